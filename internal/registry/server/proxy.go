package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// proxy makes the server a pull-through cache of an upstream registry:
// a manifest or blob the store lacks is fetched, verified against its
// digest and stored before it is served; tags are asked of the upstream
// first and served from the cache when it cannot answer. Pushes are
// refused, as the cache mirrors the upstream only.
type proxy struct {
	base       *url.URL
	user, pass string
	client     *http.Client

	mu     sync.Mutex
	tokens map[string]cachedToken // by scope
	flight map[string]*fetchCall  // fetches in progress, by digest
}

// maxCachedTokens bounds the upstream tokens kept, one per repository.
const maxCachedTokens = 1024

type cachedToken struct {
	token string
	until time.Time
}

type fetchCall struct {
	done chan struct{}
	err  error
}

func newProxy(remote, user, pass string) (*proxy, error) {
	u, err := url.Parse(strings.TrimSuffix(remote, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid proxy remote URL %q: want http(s)://host[:port]", remote)
	}
	client := &http.Client{Timeout: 10 * time.Minute, CheckRedirect: keepCredentialsHome}
	return &proxy{base: u, user: user, pass: pass, client: client,
		tokens: map[string]cachedToken{}, flight: map[string]*fetchCall{}}, nil
}

// keepCredentialsHome follows a redirect (registries send blobs to a
// CDN) without the Authorization header unless it stays on the same
// origin: net/http keeps it for another port or scheme of the same
// host, which could be another service or plain HTTP.
func keepCredentialsHome(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("stopped after 10 redirects")
	}
	if o := via[0].URL; req.URL.Scheme != o.Scheme || req.URL.Host != o.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

// upstreamError is a failed upstream request, answered as the spec's
// error with a gateway status unless the upstream said "not found".
func upstreamError(what string, resp *http.Response, err error) *apiError {
	if err != nil {
		return errorf(http.StatusBadGateway, codeUnknown, "upstream registry: %s: %v", what, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	return errorf(http.StatusBadGateway, codeUnknown, "upstream registry: %s: %s", what, resp.Status)
}

// do sends a request for repository name upstream, answering a Bearer
// challenge (docker's token flow, anonymous or with the configured
// credentials) or a Basic one once.
func (p *proxy) do(ctx context.Context, method, path, name string, header http.Header) (*http.Response, error) {
	scope := "repository:" + name + ":pull"
	send := func(auth string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, p.base.String()+path, nil)
		if err != nil {
			return nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		return p.client.Do(req)
	}
	p.mu.Lock()
	tok, ok := p.tokens[scope]
	p.mu.Unlock()
	auth := ""
	if ok && time.Now().Before(tok.until) {
		auth = "Bearer " + tok.token
	}
	resp, err := send(auth)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	resp.Body.Close()
	scheme, params := parseChallenge(challenge)
	switch strings.ToLower(scheme) {
	case "basic":
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(p.user, p.pass)
		return send(req.Header.Get("Authorization"))
	case "bearer":
		t, err := p.fetchToken(ctx, params, scope)
		if err != nil {
			return nil, err
		}
		return send("Bearer " + t)
	}
	return nil, fmt.Errorf("unsupported challenge %q", challenge)
}

func (p *proxy) fetchToken(ctx context.Context, params map[string]string, scope string) (string, error) {
	realm, err := url.Parse(params["realm"])
	if err != nil || realm.Host == "" || (realm.Scheme != "https" && realm.Scheme != "http") {
		return "", fmt.Errorf("bad token realm %q", params["realm"])
	}
	// The realm receives the upstream credentials: an upstream reached
	// over TLS must not send them to a plain-HTTP realm.
	if p.base.Scheme == "https" && realm.Scheme != "https" {
		return "", fmt.Errorf("token realm %q is not HTTPS though the upstream is: credentials not sent", params["realm"])
	}
	q := realm.Query()
	if s := params["service"]; s != "" {
		q.Set("service", s)
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	if p.user != "" {
		req.SetBasicAuth(p.user, p.pass)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token from %s: %s", realm.Host, resp.Status)
	}
	var v struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return "", fmt.Errorf("token from %s: %v", realm.Host, err)
	}
	t := v.Token
	if t == "" {
		t = v.AccessToken
	}
	if v.ExpiresIn < 60 {
		v.ExpiresIn = 60
	}
	now := time.Now()
	p.mu.Lock()
	// Scopes name repositories the clients choose: keep the cache bounded.
	if len(p.tokens) >= maxCachedTokens {
		for k, c := range p.tokens {
			if !now.Before(c.until) {
				delete(p.tokens, k)
			}
		}
		if len(p.tokens) >= maxCachedTokens {
			clear(p.tokens)
		}
	}
	p.tokens[scope] = cachedToken{t, now.Add(time.Duration(v.ExpiresIn-10) * time.Second)}
	p.mu.Unlock()
	return t, nil
}

// parseChallenge reads `Scheme k="v",k2="v2"`.
func parseChallenge(h string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				break
			}
			v, rest = after[1:1+end], after[2+end:]
		} else {
			v, rest, _ = strings.Cut(after, ",")
		}
		params[strings.ToLower(strings.TrimSpace(k))] = v
	}
	return scheme, params
}

// once runs fetch for key unless one runs already, whose result it
// shares: twenty clients pulling one layer download it once.
func (p *proxy) once(key string, fetch func() error) error {
	p.mu.Lock()
	if c, ok := p.flight[key]; ok {
		p.mu.Unlock()
		<-c.done
		return c.err
	}
	c := &fetchCall{done: make(chan struct{})}
	p.flight[key] = c
	p.mu.Unlock()
	c.err = fetch()
	p.mu.Lock()
	delete(p.flight, key)
	p.mu.Unlock()
	close(c.done)
	return c.err
}

var manifestAccept = strings.Join([]string{mtOCIManifest, mtOCIIndex, mtDockerManifest, mtDockerList}, ", ")

// proxyManifest brings manifest ref of name into the cache: a tag is
// always asked of the upstream (it may have moved), a digest only when
// the cache lacks it. When the upstream cannot be reached the cache
// answers as it is.
func (s *Server) proxyManifest(r *http.Request, name, ref string) error {
	if strings.Contains(ref, ":") {
		d, err := parseDigest(ref)
		if err != nil {
			return err
		}
		if s.store.exists(s.store.manifestLinkPath(name, d)) {
			return nil
		}
	} else if !validTag(ref) {
		return nil // resolve refuses it
	}
	return s.proxy.once("manifest "+name+"@"+ref, func() error {
		// Not tied to the first client's request: the others wait on it,
		// and its leaving must not fail them.
		resp, err := s.proxy.do(context.WithoutCancel(r.Context()), http.MethodGet, "/v2/"+name+"/manifests/"+ref, name, http.Header{"Accept": {manifestAccept}})
		if err != nil || resp.StatusCode != http.StatusOK {
			if resp != nil {
				resp.Body.Close()
			}
			if !strings.Contains(ref, ":") {
				if _, lerr := s.resolve(name, ref); lerr == nil {
					return nil // cached tag, upstream unreachable
				}
			}
			if e := upstreamError("manifest "+name+":"+ref, resp, err); e != nil {
				return e
			}
			return nil // not found upstream: resolve answers 404
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestSize+1))
		if err != nil {
			return upstreamError("manifest "+name+":"+ref, nil, err)
		}
		if len(body) > maxManifestSize {
			return errorf(http.StatusBadGateway, codeManifestInvalid, "upstream manifest %s:%s exceeds %d bytes", name, ref, maxManifestSize)
		}
		alg := "sha256"
		var want digest
		if strings.Contains(ref, ":") {
			want, _ = parseDigest(ref)
			alg = want.alg
		} else if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
			if want, err = parseDigest(h); err != nil {
				return errorf(http.StatusBadGateway, codeDigestInvalid, "upstream sent digest %q for %s:%s", h, name, ref)
			}
			alg = want.alg
		}
		d := digestOf(alg, body)
		if !want.isZero() && d != want {
			return errorf(http.StatusBadGateway, codeDigestInvalid, "upstream manifest %s:%s has digest %s, not %s: not stored", name, ref, d, want)
		}
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		var m manifest
		if json.Unmarshal(body, &m) != nil {
			return errorf(http.StatusBadGateway, codeManifestInvalid, "upstream manifest %s:%s is not JSON", name, ref)
		}
		if !knownManifestType(mt) {
			mt = m.MediaType
		}
		if !knownManifestType(mt) {
			return errorf(http.StatusBadGateway, codeManifestInvalid, "upstream manifest %s:%s has unsupported media type %q", name, ref, mt)
		}
		s.gcMu.RLock()
		defer s.gcMu.RUnlock()
		s.touch(d)
		if err := s.store.putBlob(d, body); err != nil {
			return err
		}
		if err := s.store.link(s.store.manifestLinkPath(name, d), []byte(mt)); err != nil {
			return err
		}
		if !strings.Contains(ref, ":") {
			return s.store.writeFile(s.store.tagPath(name, ref), []byte(d.String()))
		}
		return nil
	})
}

// proxyBlob brings blob d of name into the cache when it lacks it:
// downloaded to a temporary file, hashed on the way, and committed only
// when the digest matches.
func (s *Server) proxyBlob(r *http.Request, name string, d digest) error {
	if s.store.exists(s.store.blobLinkPath(name, d)) && s.store.exists(s.store.blobPath(d)) {
		return nil
	}
	return s.proxy.once("blob "+name+"@"+d.String(), func() error {
		if s.store.exists(s.store.blobLinkPath(name, d)) && s.store.exists(s.store.blobPath(d)) {
			return nil
		}
		// Not tied to the first client's request: the others wait on it.
		resp, err := s.proxy.do(context.WithoutCancel(r.Context()), http.MethodGet, "/v2/"+name+"/blobs/"+d.String(), name, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			if resp != nil {
				resp.Body.Close()
			}
			if e := upstreamError("blob "+d.String()+" of "+name, resp, err); e != nil {
				return e
			}
			return nil // not found upstream: the handler answers 404
		}
		defer resp.Body.Close()
		f, tmp, err := s.store.tempFile()
		if err != nil {
			return err
		}
		h := newHash(d.alg)
		var body io.Reader = resp.Body
		if limit := s.cfg.MaxBlobSize; limit > 0 {
			body = io.LimitReader(body, limit+1)
		}
		n, err := io.Copy(io.MultiWriter(f, h), body)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err == nil && s.cfg.MaxBlobSize > 0 && n > s.cfg.MaxBlobSize {
			s.store.remove(tmp)
			return errorf(http.StatusBadGateway, codeSizeInvalid, "upstream blob %s of %s exceeds this registry's limit of %d bytes: not stored", d, name, s.cfg.MaxBlobSize)
		}
		if err != nil {
			s.store.remove(tmp)
			return upstreamError("blob "+d.String()+" of "+name, nil, err)
		}
		if got := hexString(h.Sum(nil)); got != d.hex {
			s.store.remove(tmp)
			return errorf(http.StatusBadGateway, codeDigestInvalid, "upstream sent %s:%s for blob %s of %s: not stored", d.alg, got, d, name)
		}
		s.gcMu.RLock()
		defer s.gcMu.RUnlock()
		s.touch(d)
		if err := s.store.commitBlobFile(d, tmp); err != nil {
			s.store.remove(tmp)
			return err
		}
		return s.linkBlob(name, d)
	})
}

// proxyTags asks the upstream for the tag list, passing its answer on
// (with pagination); the cache's own list answers when it cannot.
func (s *Server) proxyTags(w http.ResponseWriter, r *http.Request, name string) bool {
	path := "/v2/" + name + "/tags/list"
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	resp, err := s.proxy.do(r.Context(), http.MethodGet, path, name, nil)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return false
	}
	if link := resp.Header.Get("Link"); link != "" {
		w.Header().Set("Link", link)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return true
}
