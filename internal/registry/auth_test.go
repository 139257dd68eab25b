package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/layer"
)

// TestAuthFlows: a pull through Docker Hub's token flow and through Basic
// auth with the right credential; a wrong one is refused as docker words
// it, for pull and for login.
func TestAuthFlows(t *testing.T) {
	ctx := context.Background()
	img := buildImage(t, image.MediaTypeImageManifest, "amd64", makeLayer(t, layer.Gzip, "a", "auth"))
	for _, scheme := range []string{"bearer", "basic"} {
		t.Run(scheme, func(t *testing.T) {
			f := newFake(t)
			f.auth, f.user, f.pass = scheme, "alice", "s3cret"
			f.add("team/app", "1", img)
			good := keychain{f.host(): {Username: "alice", Password: "s3cret"}}
			bad := keychain{f.host(): {Username: "alice", Password: "wrong"}}
			st := newStore(t)
			if _, err := testClient(t, Options{}, good).Pull(ctx, st, mustRef(t, f.host()+"/team/app:1"), PullOptions{}); err != nil {
				t.Fatal(err)
			}
			st2 := newStore(t)
			_, err := testClient(t, Options{}, bad).Pull(ctx, st2, mustRef(t, f.host()+"/team/app:1"), PullOptions{})
			if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "pull access denied for "+f.host()+"/team/app") {
				t.Errorf("wrong password: %v", err)
			}
			assertEmpty(t, st2)
			_, err = testClient(t, Options{}, nil).Pull(ctx, st2, mustRef(t, f.host()+"/team/app:1"), PullOptions{})
			if !errdefs.IsNotFound(err) {
				t.Errorf("anonymous: %v", err)
			}

			c := testClient(t, Options{}, nil)
			if _, err := c.Login(ctx, f.host(), AuthConfig{Username: "alice", Password: "s3cret"}); err != nil {
				t.Errorf("login: %v", err)
			}
			_, err = c.Login(ctx, f.host(), AuthConfig{Username: "alice", Password: "wrong"})
			want := "login attempt to http://" + f.host() + "/v2/ failed with status: 401 Unauthorized"
			if scheme == "bearer" {
				want = "unauthorized: incorrect username or password"
			}
			if !errors.Is(err, errdefs.ErrForbidden) || !strings.Contains(err.Error(), want) {
				t.Errorf("login with a wrong password: %v, want %q", err, want)
			}
		})
	}
}

// TestCredStore: docker's config.json (DOCKER_CONFIG), base64 auths,
// other keys kept, Docker Hub's key, and credential helpers.
func TestCredStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"psFormat":"table {{.ID}}"}`), 0o600)
	cs := NewCredStore("")
	file, err := cs.Store(ctx, "127.0.0.1:5000", AuthConfig{Username: "alice", Password: "pw:with:colons"})
	if err != nil || file != filepath.Join(dir, "config.json") {
		t.Fatalf("store: %q %v", file, err)
	}
	if _, err := cs.Store(ctx, "docker.io", AuthConfig{Username: "bob", Password: "x"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var doc map[string]json.RawMessage
	json.Unmarshal(raw, &doc)
	if string(doc["psFormat"]) != `"table {{.ID}}"` {
		t.Errorf("other keys lost: %s", raw)
	}
	if !strings.Contains(string(raw), `"auth": "YWxpY2U6cHc6d2l0aDpjb2xvbnM="`) || !strings.Contains(string(raw), `"https://index.docker.io/v1/"`) {
		t.Errorf("config.json:\n%s", raw)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "config.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	a, err := cs.Get(ctx, "127.0.0.1:5000")
	if err != nil || a.Username != "alice" || a.Password != "pw:with:colons" {
		t.Errorf("get: %+v %v", a, err)
	}
	if ok, err := cs.Erase(ctx, "127.0.0.1:5000"); !ok || err != nil {
		t.Errorf("erase: %v %v", ok, err)
	}
	if ok, _ := cs.Erase(ctx, "127.0.0.1:5000"); ok {
		t.Error("erased twice")
	}
	if a, _ := cs.Get(ctx, "127.0.0.1:5000"); !a.Empty() {
		t.Errorf("after erase: %+v", a)
	}

	// A credential helper (docker-credential-<name> store|get|erase).
	bin := t.TempDir()
	state := filepath.Join(t.TempDir(), "secret")
	script := "#!/bin/sh\ncase $1 in\nstore) cat > " + state + ";;\nget) if [ -s " + state + " ]; then cat " + state + "; else echo 'credentials not found in native keychain'; exit 1; fi;;\nerase) : > " + state + ";;\nesac\n"
	os.WriteFile(filepath.Join(bin, "docker-credential-fake"), []byte(script), 0o755)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"credHelpers":{"reg.example:5000":"fake"}}`), 0o600)
	if file, err := cs.Store(ctx, "reg.example:5000", AuthConfig{Username: "carol", Password: "pw"}); err != nil || file != "" {
		t.Fatalf("helper store: %q %v", file, err)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, "config.json")); strings.Contains(string(raw), "carol") || strings.Contains(string(raw), `"auth"`) {
		t.Errorf("the secret went into config.json:\n%s", raw)
	}
	if a, err := cs.Get(ctx, "reg.example:5000"); err != nil || a.Username != "carol" || a.Password != "pw" {
		t.Errorf("helper get: %+v %v", a, err)
	}
	if ok, err := cs.Erase(ctx, "reg.example:5000"); !ok || err != nil {
		t.Errorf("helper erase: %v %v", ok, err)
	}
	if a, err := cs.Get(ctx, "reg.example:5000"); err != nil || !a.Empty() {
		t.Errorf("helper get after erase: %+v %v", a, err)
	}
}

// TestMirrors: a mirror is tried first for any registry; one without the
// image falls back to the origin.
func TestMirrors(t *testing.T) {
	ctx := context.Background()
	img := buildImage(t, image.MediaTypeImageManifest, "amd64", makeLayer(t, layer.Gzip, "a", "mirrored"))
	origin, mirror, empty := newFake(t), newFake(t), newFake(t)
	origin.add("team/app", "1", img)
	mirror.add("team/app", "1", img)
	c := testClient(t, Options{Mirrors: map[string][]string{origin.host(): {"http://" + empty.host(), "http://" + mirror.host()}}}, nil)
	st := newStore(t)
	if _, err := c.Pull(ctx, st, mustRef(t, origin.host()+"/team/app:1"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if empty.count("/v2/team/app/manifests/1") != 1 || mirror.count("/v2/team/app/manifests/1") != 1 || origin.count("/v2/team/app/manifests/1") != 0 {
		t.Errorf("manifest requests: empty mirror %d, mirror %d, origin %d", empty.count("/v2/team/app/manifests/1"), mirror.count("/v2/team/app/manifests/1"), origin.count("/v2/team/app/manifests/1"))
	}
	img2 := buildImage(t, image.MediaTypeImageManifest, "amd64", makeLayer(t, layer.Gzip, "b", "origin only"))
	origin.add("team/app", "2", img2)
	if _, err := c.Pull(ctx, st, mustRef(t, origin.host()+"/team/app:2"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if origin.count("/v2/team/app/manifests/2") != 1 {
		t.Error("no fallback to the origin")
	}
}

// TestPlainHTTPPolicy: plain HTTP only to loopback or listed registries.
func TestPlainHTTPPolicy(t *testing.T) {
	o := Options{InsecureRegistries: []string{"reg.lan:5000", "10.1.0.0/16"}}
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true, "127.8.9.1": true,
		"reg.lan:5000": true, "10.1.2.3:5000": true, "10.2.0.1:5000": false, "192.168.1.1:5000": false, "quay.io": false,
	} {
		if got := o.insecure(host); got != want {
			t.Errorf("insecure(%s) = %v, want %v", host, got, want)
		}
	}
	p := &policyTransport{host: "192.168.1.1:5000", inner: http.DefaultTransport}
	req, _ := http.NewRequest("GET", "http://192.168.1.1:5000/v2/", nil)
	if _, err := p.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "insecure-registries") {
		t.Errorf("plain HTTP to a private address: %v", err)
	}
}

// TestLoadConfig: daemon.json's keys, a mirror list (Docker Hub's) or map.
func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "daemon.json")
	os.WriteFile(p, []byte(`{"insecure-registries":["reg.lan:5000"],"registry-mirrors":["https://m.example"],"max-concurrent-downloads":7}`), 0o644)
	o, err := LoadConfig(p)
	if err != nil || o.MaxConcurrentDownloads != 7 || o.Mirrors["docker.io"][0] != "https://m.example" || o.InsecureRegistries[0] != "reg.lan:5000" {
		t.Errorf("%+v %v", o, err)
	}
	os.WriteFile(p, []byte(`{"registry-mirrors":{"quay.io":["http://127.0.0.1:5001"]}}`), 0o644)
	if o, err := LoadConfig(p); err != nil || o.Mirrors["quay.io"][0] != "http://127.0.0.1:5001" || o.MaxConcurrentDownloads != 3 {
		t.Errorf("%+v %v", o, err)
	}
	os.WriteFile(p, []byte(`{"registry-mirrors":{"quay.io":["ftp://x"]}}`), 0o644)
	if _, err := LoadConfig(p); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad mirror: %v", err)
	}
	if o, err := LoadConfig(filepath.Join(dir, "none.json")); err != nil || o.MaxConcurrentDownloads != 3 || o.MaxConcurrentUploads != 5 || !slices.Equal(o.CertsDirs, DefaultCertsDirs) {
		t.Errorf("missing file: %+v %v", o, err)
	}
	// berth's certs-dirs replaces where certs.d/<host>/ is looked for.
	os.WriteFile(p, []byte(`{"certs-dirs":["/srv/certs.d","/etc/docker/certs.d"]}`), 0o644)
	if o, err := LoadConfig(p); err != nil || !slices.Equal(o.CertsDirs, []string{"/srv/certs.d", "/etc/docker/certs.d"}) {
		t.Errorf("certs-dirs: %+v %v", o, err)
	}
	os.WriteFile(p, []byte(`{"certs-dirs":["certs.d"]}`), 0o644)
	if _, err := LoadConfig(p); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative certs-dirs: %v", err)
	}
}

// TestSearch: /v1/search with a limit.
func TestSearch(t *testing.T) {
	f := newFake(t)
	res, err := testClient(t, Options{}, nil).Search(context.Background(), f.host(), "team", 2)
	if err != nil || len(res) != 2 || res[0].Name != "team/app0" {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		in     string
		scheme string
		params map[string]string
	}{
		{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`, "bearer",
			map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/busybox:pull"}},
		{`Basic realm="Registry Realm"`, "basic", map[string]string{"realm": "Registry Realm"}},
		{`Basic realm=plain, charset="UTF-8"`, "basic", map[string]string{"realm": "plain", "charset": "UTF-8"}},
		{`Negotiate, Bearer realm="https://x/token",scope="a b"`, "bearer", map[string]string{"realm": "https://x/token", "scope": "a b"}},
		{`Bearer realm="with \"quotes\""`, "bearer", map[string]string{"realm": `with "quotes"`}},
		{``, "", nil},
	}
	for _, tc := range tests {
		c := parseChallenge(tc.in)
		if c.scheme != tc.scheme || len(c.params) != len(tc.params) {
			t.Errorf("%s: got %+v", tc.in, c)
			continue
		}
		for k, v := range tc.params {
			if c.params[k] != v {
				t.Errorf("%s: %s=%q, want %q", tc.in, k, c.params[k], v)
			}
		}
	}
}

// TestCertsDir: a registry's CA from certs.d/<host:port>/ca.crt is
// trusted, and a client key pair there is presented; without them the
// TLS handshake fails.
func TestCertsDir(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	host := "example.com:" + port // a name the test server's certificate holds, not loopback
	certs := t.TempDir()
	dir := filepath.Join(certs, host)
	os.MkdirAll(dir, 0o755)
	get := func() (int, error) {
		c := New(Options{CertsDirs: []string{certs}}, nil)
		rt, err := c.base(host)
		if err != nil {
			return 0, err
		}
		rt.(*policyTransport).inner.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
		}
		res, err := (&http.Client{Transport: rt}).Get("https://" + host + "/v2/")
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	if code, err := get(); err != nil || code != http.StatusForbidden {
		t.Fatalf("with the CA, no client certificate: %d %v", code, err)
	}
	// A client pair: a self-signed certificate and its key.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "client.cert"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "client.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	if code, err := get(); err != nil || code != http.StatusOK {
		t.Fatalf("with a client pair: %d %v", code, err)
	}
	os.Remove(filepath.Join(dir, "client.cert"))
	if _, err := get(); err == nil || !strings.Contains(err.Error(), "no matching .cert") {
		t.Errorf("a key without its certificate: %v", err)
	}
}

// TestTransient: which failures are tried again.
func TestTransient(t *testing.T) {
	op := func(err error) error { return &net.OpError{Op: "read", Net: "tcp", Err: err} }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection reset", &url.Error{Op: "Get", URL: "x", Err: op(syscall.ECONNRESET)}, true},
		{"broken pipe", op(syscall.EPIPE), true},
		{"truncated body", io.ErrUnexpectedEOF, true},
		{"connection refused", &url.Error{Op: "Get", URL: "x", Err: op(syscall.ECONNREFUSED)}, false},
		{"no such host", &url.Error{Op: "Get", URL: "x", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}, false},
		{"https to an http server", &url.Error{Op: "Get", URL: "x", Err: errors.New("http: server gave HTTP response to HTTPS client")}, false},
		{"canceled", context.Canceled, false},
		{"registry error", errdefs.InvalidArgument("bad"), false},
	}
	for _, tc := range tests {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("%s: transient = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestBearerMoreScope: a token is for the scopes asked; a request for
// another repository (a mount's source) gets a 401 naming the scope it
// needs, and the transport fetches a token for it and tries once more.
func TestBearerMoreScope(t *testing.T) {
	var srv *httptest.Server
	var tokens []string
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			scopes := strings.Join(r.URL.Query()["scope"], " ")
			tokens = append(tokens, scopes)
			json.NewEncoder(w).Encode(map[string]string{"access_token": "tok:" + scopes})
			return
		}
		repo := "none"
		if p := strings.TrimPrefix(r.URL.Path, "/v2/"); p != "" {
			repo, _, _ = strings.Cut(p, "/manifests/")
		}
		need := "repository:" + repo + ":pull"
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer tok:")
		if r.URL.Path == "/v2/" && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || strings.Contains(got, need) {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake",scope="%s"`, srv.URL, need))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := testClient(t, Options{}, nil)
	r, err := c.open(context.Background(), endpoint{host: host, origin: host}, "team/a", []string{"pull"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.hc.Get("http://" + host + "/v2/team/b/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d after the scope upgrade; tokens asked: %q", res.StatusCode, tokens)
	}
	if last := tokens[len(tokens)-1]; last != "repository:team/a:pull repository:team/b:pull" {
		t.Errorf("tokens asked: %q", tokens)
	}
}
