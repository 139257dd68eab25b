package registry

// The handshake with a registry, as the distribution token specification
// and docker's daemon do it: GET /v2/ (https, then plain http where the
// policy allows it); a 401 names the scheme. Basic: the credential on
// every request to the registry. Bearer: a token from the realm for the
// repository scopes (Basic credentials, or an identity token exchanged as
// an OAuth2 refresh token), sent on every request to the registry and
// fetched again when the registry asks for more scope (a mount's source).
// Written here rather than taken from go-containerregistry's transport:
// that package imports its name package and go-digest, which compile
// some forty regular expressions when every berth process starts.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/berth-dev/berth/internal/errdefs"
)

// challenge is a WWW-Authenticate challenge.
type challenge struct {
	scheme string // "basic" or "bearer" (lower case); "" when none was asked
	params map[string]string
}

// parseChallenge reads the first Basic or Bearer challenge of a
// WWW-Authenticate header: scheme, then key=value or key="quoted" pairs.
func parseChallenge(h string) challenge {
	for h != "" {
		h = strings.TrimLeft(h, " ,")
		sp := strings.IndexAny(h, " ")
		if sp < 0 {
			return challenge{scheme: strings.ToLower(h), params: map[string]string{}}
		}
		c := challenge{scheme: strings.ToLower(h[:sp]), params: map[string]string{}}
		rest := h[sp+1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || strings.ContainsAny(rest[:eq], " \"") {
				break // the next challenge
			}
			key := strings.ToLower(strings.TrimSpace(rest[:eq]))
			rest = rest[eq+1:]
			var val string
			if strings.HasPrefix(rest, `"`) {
				var b strings.Builder
				i := 1
				for ; i < len(rest) && rest[i] != '"'; i++ {
					if rest[i] == '\\' && i+1 < len(rest) {
						i++
					}
					b.WriteByte(rest[i])
				}
				val, rest = b.String(), rest[min(i+1, len(rest)):]
			} else {
				end := strings.IndexByte(rest, ',')
				if end < 0 {
					end = len(rest)
				}
				val, rest = strings.TrimSpace(rest[:end]), rest[end:]
			}
			c.params[key] = val
		}
		if c.scheme == "basic" || c.scheme == "bearer" {
			return c
		}
		h = rest
	}
	return challenge{}
}

// authTransport authenticates the requests to one registry host.
type authTransport struct {
	inner  http.RoundTripper
	host   string
	scheme string // what the ping found: "https" or "http"
	cred   AuthConfig
	ch     challenge

	mu     sync.Mutex
	scopes []string
	token  string
}

// handshake pings host and returns a transport authenticated for scopes.
func (c *Client) handshake(ctx context.Context, host, scheme string, cred AuthConfig, scopes []string) (*authTransport, error) {
	base, err := c.base(host)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	known := c.schemes[host]
	c.mu.Unlock()
	schemes := []string{"https"}
	switch {
	case scheme != "":
		schemes = []string{scheme}
	case known != "":
		schemes = []string{known}
	case c.opts.insecure(host):
		schemes = append(schemes, "http") // dockerd's fallback for insecure registries
	}
	hc := newHTTPClient(base)
	var res *http.Response
	var used string
	for i, s := range schemes {
		err = c.retry(ctx, func() (bool, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s+"://"+host+"/v2/", nil)
			if err != nil {
				return false, err
			}
			req.Header.Set("User-Agent", userAgent)
			res, err = hc.Do(req)
			if err != nil {
				return transient(err), errdefs.Unavailable("registry %s: %v", host, unwrapURLError(err))
			}
			if res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests {
				err := responseError(res, "registry "+host)
				return true, &retryAfterError{err, parseRetryAfter(res.Header.Get("Retry-After"))}
			}
			return false, nil
		})
		if err == nil {
			used = s
			c.mu.Lock()
			c.schemes[host] = s
			c.mu.Unlock()
			break
		}
		if i == len(schemes)-1 {
			return nil, err
		}
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	t := &authTransport{inner: base, host: host, scheme: used, cred: cred, scopes: scopes}
	switch res.StatusCode {
	case http.StatusOK:
		return t, nil
	case http.StatusUnauthorized:
		t.ch = parseChallenge(res.Header.Get("WWW-Authenticate"))
	default:
		return nil, statusError(res.StatusCode, "registry "+host, "")
	}
	if t.ch.scheme == "bearer" {
		if err := t.refresh(ctx, nil); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// refresh fetches a bearer token for the transport's scopes plus more.
func (t *authTransport) refresh(ctx context.Context, more []string) error {
	t.mu.Lock()
	for _, s := range more {
		if !slices.Contains(t.scopes, s) {
			t.scopes = append(t.scopes, s)
		}
	}
	scopes := slices.Clone(t.scopes)
	t.mu.Unlock()
	if t.cred.RegistryToken != "" {
		t.mu.Lock()
		t.token = t.cred.RegistryToken
		t.mu.Unlock()
		return nil
	}
	realm := t.ch.params["realm"]
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && t.scheme == "http")) || u.Host == "" {
		return errdefs.InvalidArgument("registry %s: token realm %q: must be an https URL (http for a plain-HTTP registry)", t.host, realm)
	}
	q := u.Query()
	if s := t.ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	user, pass := t.cred.Username, t.cred.Password
	if t.cred.Auth != "" && user == "" {
		user, pass = decodeAuth(t.cred.Auth)
	}
	var req *http.Request
	if t.cred.IdentityToken != "" {
		// An identity token is an OAuth2 refresh token (docker login's).
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t.cred.IdentityToken}, "client_id": {userAgent}, "service": {q.Get("service")}}
		form["scope"] = scopes
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		if user != "" {
			q.Set("account", user)
		}
		u.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err == nil && user != "" {
			req.SetBasicAuth(user, pass)
		}
	}
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", userAgent)
	res, err := newHTTPClient(t.inner).Do(req)
	if err != nil {
		return errdefs.Unavailable("registry %s: token from %s: %v", t.host, u.Host, unwrapURLError(err))
	}
	if res.StatusCode != http.StatusOK {
		return responseError(res, "registry "+t.host+": token")
	}
	defer res.Body.Close()
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&tok); err != nil {
		return errdefs.InvalidArgument("registry %s: token: %v", t.host, err)
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken
	}
	if tok.Token == "" {
		return errdefs.InvalidArgument("registry %s: the token service gave no token", t.host)
	}
	t.mu.Lock()
	t.token = tok.Token
	t.mu.Unlock()
	return nil
}

func decodeAuth(s string) (string, string) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", ""
	}
	u, p, _ := strings.Cut(string(raw), ":")
	return u, p
}

// RoundTrip sends requests for the registry by the scheme the ping found,
// with its credential; redirected requests elsewhere (blob storage) go
// without it. A 401 asking for more scope gets a new token and one more
// try.
func (t *authTransport) RoundTrip(in *http.Request) (*http.Response, error) {
	if in.URL.Host != t.host {
		return t.inner.RoundTrip(in)
	}
	req := in.Clone(in.Context())
	req.URL.Scheme = t.scheme
	t.authorize(req)
	res, err := t.inner.RoundTrip(req)
	if err != nil || res.StatusCode != http.StatusUnauthorized || t.ch.scheme != "bearer" {
		return res, err
	}
	ch := parseChallenge(res.Header.Get("WWW-Authenticate"))
	if ch.scheme != "bearer" || (in.Body != nil && in.GetBody == nil) {
		return res, nil
	}
	var more []string
	if s := ch.params["scope"]; s != "" {
		more = strings.Split(s, " ")
	}
	if err := t.refresh(in.Context(), more); err != nil {
		return res, nil // the 401 says it
	}
	res.Body.Close()
	retry := in.Clone(in.Context())
	retry.URL.Scheme = t.scheme
	if in.GetBody != nil {
		if retry.Body, err = in.GetBody(); err != nil {
			return nil, err
		}
	}
	t.authorize(retry)
	return t.inner.RoundTrip(retry)
}

func (t *authTransport) authorize(req *http.Request) {
	switch t.ch.scheme {
	case "basic":
		user, pass := t.cred.Username, t.cred.Password
		if t.cred.Auth != "" && user == "" {
			user, pass = decodeAuth(t.cred.Auth)
		}
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
	case "bearer":
		t.mu.Lock()
		tok := t.token
		t.mu.Unlock()
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
}
