package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// NormalizeServer turns what a user gives login/logout/search ("",
// "docker.io", "https://host:5000/v2/") into a registry host.
func NormalizeServer(s string) string {
	if s == "" {
		return DockerHub
	}
	return hostOfKey(s)
}

// Login checks a's credentials against registry host as docker does (a
// GET of /v2/ authenticated as a, through the token service when the
// registry has one), and returns the identity token the registry gave,
// if any.
func (c *Client) Login(ctx context.Context, host string, a AuthConfig) (string, error) {
	api := apiHost(host)
	t, err := c.handshake(ctx, api, "", a, nil)
	endpointURL := "https://" + api + "/v2/"
	if err != nil {
		var he *httpError
		if errors.As(err, &he) && (he.code == http.StatusUnauthorized || he.code == http.StatusForbidden) {
			return "", errdefs.Forbidden("Get %q: unauthorized: incorrect username or password", endpointURL)
		}
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpointURL, nil)
	if err != nil {
		return "", err
	}
	res, err := newHTTPClient(t).Do(req)
	if err != nil {
		return "", errdefs.Unavailable("Get %q: %v", endpointURL, unwrapURLError(err))
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		u := *res.Request.URL
		if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
			return "", errdefs.Forbidden("login attempt to %s failed with status: %d %s", u.String(), res.StatusCode, http.StatusText(res.StatusCode))
		}
		return "", errdefs.Unavailable("login attempt to %s failed with status: %d %s", u.String(), res.StatusCode, http.StatusText(res.StatusCode))
	}
	return "", nil
}

// SearchResult is one repository a search found (Docker Hub's fields).
type SearchResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	StarCount   int    `json:"star_count"`
	IsOfficial  bool   `json:"is_official"`
	IsAutomated bool   `json:"is_automated"`
}

// Search asks registry host's /v1/search for term (Docker Hub's API,
// which berth's registry serves too).
func (c *Client) Search(ctx context.Context, host, term string, limit int) ([]SearchResult, error) {
	apiHostName := host
	if host == DockerHub {
		apiHostName = "index.docker.io"
	}
	base, err := c.base(apiHostName)
	if err != nil {
		return nil, err
	}
	var auth AuthConfig
	if c.creds != nil {
		if auth, err = c.creds.Get(ctx, host); err != nil {
			return nil, err
		}
	}
	q := url.Values{"q": {term}}
	if limit > 0 {
		q.Set("n", strconv.Itoa(limit))
	}
	schemes := []string{"https"}
	if c.opts.insecure(apiHostName) {
		schemes = append(schemes, "http")
	}
	hc := newHTTPClient(base)
	var lastErr error
	for _, scheme := range schemes {
		u := scheme + "://" + apiHostName + "/v1/search?" + q.Encode()
		var out []SearchResult
		err := c.retry(ctx, func() (bool, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return false, err
			}
			if auth.Username != "" {
				req.SetBasicAuth(auth.Username, auth.Password)
			}
			res, err := hc.Do(req)
			if err != nil {
				return transient(err), errdefs.Unavailable("search %s: %v", host, unwrapURLError(err))
			}
			if res.StatusCode != http.StatusOK {
				again := res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500
				err := responseError(res, fmt.Sprintf("search %s", host))
				if again {
					err = &retryAfterError{err, parseRetryAfter(res.Header.Get("Retry-After"))}
				}
				return again, err
			}
			defer res.Body.Close()
			var doc struct {
				Results []SearchResult `json:"results"`
			}
			if err := json.NewDecoder(io.LimitReader(res.Body, 16<<20)).Decode(&doc); err != nil {
				return false, errdefs.InvalidArgument("search %s: bad answer: %v", host, err)
			}
			out = doc.Results
			return false, nil
		})
		if err == nil {
			return out, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "http: server gave HTTP response to HTTPS client") && !errors.Is(err, errdefs.ErrUnavailable) {
			break
		}
	}
	return nil, lastErr
}
