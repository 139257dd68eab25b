package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Limits on documents read into memory: containerd's and docker's 4 MiB
// for manifests and indexes; configurations a little larger.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 8 << 20
	maxRedirects    = 10
	userAgent       = "berth"
)

// Keychain finds the credentials for a registry host.
type Keychain interface {
	Get(ctx context.Context, host string) (AuthConfig, error)
}

// Client speaks to registries under one policy.
type Client struct {
	opts  Options
	creds Keychain
	// Retries: attempts per request and the first back-off (doubled each
	// time, capped at maxBackoff).
	attempts   int
	backoff    time.Duration
	maxBackoff time.Duration

	mu      sync.Mutex
	bases   map[string]http.RoundTripper // per host: TLS policy applied
	schemes map[string]string            // per host: what its ping answered on
}

// New returns a client; creds may be nil (anonymous).
func New(opts Options, creds Keychain) *Client {
	if opts.MaxConcurrentDownloads < 1 {
		opts.MaxConcurrentDownloads = 3
	}
	if opts.MaxConcurrentUploads < 1 {
		opts.MaxConcurrentUploads = 5
	}
	if opts.CertsDirs == nil {
		opts.CertsDirs = DefaultCertsDirs
	}
	return &Client{opts: opts, creds: creds, attempts: 5, backoff: 250 * time.Millisecond, maxBackoff: 8 * time.Second, bases: map[string]http.RoundTripper{}, schemes: map[string]string{}}
}

// SetRetry changes the retry policy (tests make it quick).
func (c *Client) SetRetry(attempts int, backoff time.Duration) {
	c.attempts, c.backoff = attempts, backoff
}

// apiHost is the host the registry named in references is served from.
func apiHost(domain string) string {
	if domain == DockerHub {
		return dockerHubAPI
	}
	return domain
}

// endpoint is where a repository is reached: a mirror or the origin.
type endpoint struct {
	host   string // host[:port]
	scheme string // "" to let the ping decide (https, or http when allowed)
	mirror bool
	origin string // the registry the reference names
}

func (e endpoint) String() string {
	if e.mirror {
		return "mirror " + e.scheme + "://" + e.host
	}
	return e.origin
}

// endpoints are the mirrors of registry domain, then the registry itself.
func (c *Client) endpoints(domain string) []endpoint {
	var out []endpoint
	for _, m := range c.opts.Mirrors[domain] {
		scheme, rest, _ := strings.Cut(m, "://")
		host, _, _ := strings.Cut(rest, "/")
		out = append(out, endpoint{host: host, scheme: scheme, mirror: true, origin: domain})
	}
	return append(out, endpoint{host: apiHost(domain), origin: domain})
}

// base is the transport for host: TLS per certs.d and the insecure list,
// and no plain HTTP to a registry that may not have it.
func (c *Client) base(host string) (http.RoundTripper, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rt, ok := c.bases[host]; ok {
		return rt, nil
	}
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.opts.insecure(host) {
		tcfg.InsecureSkipVerify = true // dockerd's rule for insecure registries
	}
	if err := c.loadCerts(host, tcfg); err != nil {
		return nil, err
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tcfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConnsPerHost:   16,
		ForceAttemptHTTP2:     true,
		// Layers come compressed; asking for gzip would change the bytes.
		DisableCompression: true,
		// Fewer, larger socket reads and writes for layers (net/http's
		// default is 4 KiB); a few connections at a time.
		ReadBufferSize:  256 << 10,
		WriteBufferSize: 256 << 10,
	}
	rt := &policyTransport{inner: t, host: host, allowHTTP: c.opts.insecure(host)}
	c.bases[host] = rt
	return rt, nil
}

// loadCerts reads Docker's certs.d/<host>/ layout: *.crt are CAs (added to
// the system's), *.cert with the *.key of the same name a client pair.
func (c *Client) loadCerts(host string, cfg *tls.Config) error {
	for _, root := range c.opts.CertsDirs {
		dir := filepath.Join(root, host)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			switch {
			case strings.HasSuffix(e.Name(), ".crt"):
				pem, err := os.ReadFile(p)
				if err != nil {
					return errdefs.InvalidArgument("registry %s: read CA %s: %v", host, p, err)
				}
				if cfg.RootCAs == nil {
					if cfg.RootCAs, err = x509.SystemCertPool(); err != nil || cfg.RootCAs == nil {
						cfg.RootCAs = x509.NewCertPool()
					}
				}
				if !cfg.RootCAs.AppendCertsFromPEM(pem) {
					return errdefs.InvalidArgument("registry %s: %s holds no PEM certificate", host, p)
				}
			case strings.HasSuffix(e.Name(), ".cert"):
				key := strings.TrimSuffix(p, ".cert") + ".key"
				pair, err := tls.LoadX509KeyPair(p, key)
				if err != nil {
					return errdefs.InvalidArgument("registry %s: client certificate %s (key %s): %v", host, p, key, err)
				}
				cfg.Certificates = append(cfg.Certificates, pair)
			case strings.HasSuffix(e.Name(), ".key"):
				if _, err := os.Stat(strings.TrimSuffix(p, ".key") + ".cert"); err != nil {
					return errdefs.InvalidArgument("registry %s: key %s has no matching .cert", host, p)
				}
			}
		}
	}
	return nil
}

// policyTransport refuses plain HTTP to a registry that is neither on
// loopback nor listed as insecure (the transport's ping would otherwise
// fall back to it for private addresses).
type policyTransport struct {
	inner     http.RoundTripper
	host      string
	allowHTTP bool
}

func (p *policyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && req.URL.Host == p.host && !p.allowHTTP {
		return nil, errdefs.Forbidden("registry %s is not reachable over HTTPS and is not listed in insecure-registries (%s)", p.host, DefaultConfigFile)
	}
	return p.inner.RoundTrip(req)
}

// repo is an authenticated session with one repository on one endpoint.
type repo struct {
	c    *Client
	ep   endpoint
	path string
	hc   *http.Client
	// anonBasic: the registry asks for Basic credentials and there are
	// none (docker's "no basic auth credentials").
	anonBasic bool
}

// open authenticates to repository path on ep for actions ("pull",
// "push"); extra are more scopes (a mount's source repository).
func (c *Client) open(ctx context.Context, ep endpoint, path string, actions []string, extra ...string) (*repo, error) {
	var cred AuthConfig
	if !ep.mirror && c.creds != nil {
		var err error
		if cred, err = c.creds.Get(ctx, ep.origin); err != nil {
			return nil, err
		}
	}
	scopes := append([]string{"repository:" + path + ":" + strings.Join(actions, ",")}, extra...)
	t, err := c.handshake(ctx, ep.host, ep.scheme, cred, scopes)
	if err != nil {
		return nil, err
	}
	anon := t.ch.scheme == "basic" && cred.Username == "" && cred.Password == "" && cred.Auth == ""
	return &repo{c: c, ep: ep, path: path, hc: newHTTPClient(t), anonBasic: anon}, nil
}

func newHTTPClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("redirect loop: stopped after %d redirects (last to %s)", maxRedirects, req.URL.Redacted())
		}
		return nil
	}}
}

// statusError classes an HTTP failure: what names registry and
// repository (and digest), detail what the registry said.
func statusError(code int, what, detail string) error {
	if detail == "" {
		detail = strings.ToLower(http.StatusText(code))
	}
	e := &httpError{code: code, what: what, detail: detail}
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		e.class = errdefs.ErrForbidden
	case code == http.StatusNotFound:
		e.class = errdefs.ErrNotFound
	case code == http.StatusTooManyRequests || code >= 500:
		e.class = errdefs.ErrUnavailable
	default:
		e.class = errdefs.ErrInvalidArgument
	}
	return e
}

// httpError is a registry's refusal, with its own words kept apart so
// that the use case can word it as docker does.
type httpError struct {
	code   int
	what   string
	detail string
	class  error
}

func (e *httpError) Error() string {
	if e.code == http.StatusNotFound {
		return e.what + ": " + e.detail
	}
	return fmt.Sprintf("%s: %s (status %d)", e.what, e.detail, e.code)
}

func (e *httpError) Is(target error) bool { return target == e.class }

// transient reports whether a failure is worth another try.
func transient(err error) bool {
	// A refused connection is a registry that is not there: say so at
	// once rather than after a minute of back-off.
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	// A broken or stalled connection; not a protocol or TLS mismatch,
	// which another try would meet again (*url.Error is a net.Error).
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return false // no such host: no point in asking again
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryAfter is a retry delay a response asks for.
type retryAfter struct{ d time.Duration }

// retry runs fn until it succeeds, fails for good, or the attempts are
// spent; fn reports whether its failure is transient.
func (c *Client) retry(ctx context.Context, fn func() (bool, error)) error {
	delay := c.backoff
	var err error
	for i := 0; i < c.attempts; i++ {
		var again bool
		again, err = fn()
		if err == nil || !again || i == c.attempts-1 {
			return err
		}
		wait := delay
		var ra *retryAfterError
		if errors.As(err, &ra) && ra.after > 0 {
			wait = min(ra.after, 60*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		delay = min(delay*2, c.maxBackoff)
	}
	return err
}

// retryAfterError carries a 429's or 503's Retry-After.
type retryAfterError struct {
	error
	after time.Duration
}

func (e *retryAfterError) Unwrap() error { return e.error }

func parseRetryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return time.Until(t)
	}
	return 0
}

// url of a path under the repository ("manifests/latest").
func (r *repo) url(rest string) string {
	scheme := r.ep.scheme
	if scheme == "" {
		scheme = "https" // the transport switches it to http when the ping did
	}
	return scheme + "://" + r.ep.host + "/v2/" + r.path + "/" + rest
}

func (r *repo) name() string { return r.ep.String() + "/" + r.path }

// do sends a request, retrying transient failures; a non-2xx answer is an
// error naming what (with the registry's own error codes). body, when not
// nil, is called for each attempt.
func (r *repo) do(ctx context.Context, method, url string, hdr http.Header, body func() (io.Reader, int64), what string, ok ...int) (*http.Response, error) {
	var resp *http.Response
	err := r.c.retry(ctx, func() (bool, error) {
		var rd io.Reader
		var n int64 = -1
		if body != nil {
			rd, n = body()
		}
		req, err := http.NewRequestWithContext(ctx, method, url, rd)
		if err != nil {
			return false, err
		}
		if n >= 0 {
			req.ContentLength = n
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", userAgent)
		res, err := r.hc.Do(req)
		if err != nil {
			if strings.Contains(err.Error(), "redirect loop") {
				return false, errdefs.InvalidArgument("%s: %v", what, unwrapURLError(err))
			}
			return transient(err), errdefs.Unavailable("%s: %v", what, unwrapURLError(err))
		}
		if isOK(res.StatusCode, ok) {
			resp = res
			return false, nil
		}
		err = responseError(res, what)
		again := res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500
		if again {
			err = &retryAfterError{err, parseRetryAfter(res.Header.Get("Retry-After"))}
		}
		return again, err
	})
	return resp, err
}

func isOK(code int, ok []int) bool {
	if len(ok) == 0 {
		return code >= 200 && code < 300
	}
	for _, c := range ok {
		if c == code {
			return true
		}
	}
	return false
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// responseError reads a registry's error body (its JSON error codes) and
// closes the response.
func responseError(res *http.Response, what string) error {
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	detail := ""
	if json.Unmarshal(raw, &doc) == nil {
		var parts []string
		for _, e := range doc.Errors {
			s := strings.ToLower(strings.ReplaceAll(e.Code, "_", " ")) // distribution's wording of its codes
			if e.Message != "" {
				s += ": " + e.Message
			}
			parts = append(parts, s)
		}
		detail = strings.Join(parts, "; ")
	}
	return statusError(res.StatusCode, what, detail)
}

// nextLink is the next page a Link header (RFC 5988, rel="next") names,
// resolved against the request's URL.
func nextLink(h string, base *url.URL) string {
	if h == "" {
		return ""
	}
	for _, part := range strings.Split(h, ",") {
		target, params, _ := strings.Cut(part, ";")
		if !strings.Contains(params, `rel="next"`) && !strings.Contains(params, "rel=next") {
			continue
		}
		target = strings.Trim(strings.TrimSpace(target), "<>")
		u, err := base.Parse(target)
		if err != nil {
			return ""
		}
		return u.String()
	}
	return ""
}
