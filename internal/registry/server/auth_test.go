package server

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func htpasswd(t *testing.T, users ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(users); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(users[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		// htpasswd -B writes $2y$, which must be accepted too.
		b.WriteString(users[i] + ":" + strings.Replace(string(h), "$2a$", "$2y$", 1) + "\n")
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func basic(user, pass string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

func TestHtpasswdFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"md5":   "alice:$apr1$abc$def\n",
		"sha":   "alice:{SHA}abc=\n",
		"empty": "# nobody\n",
		"bad":   "alice\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := New(Config{Root: t.TempDir(), Htpasswd: p}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Config{Root: t.TempDir(), Htpasswd: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := New(Config{Root: t.TempDir(), TokenAuth: true}); err == nil {
		t.Error("token auth without htpasswd accepted")
	}
}

func TestBasicAuth(t *testing.T) {
	s := newTestServer(t, Config{Htpasswd: htpasswd(t, "alice", "s3cret", "bob", "hunter2")})
	for _, h := range []map[string]string{nil, basic("alice", "wrong"), basic("carol", "s3cret"), {"Authorization": "Bearer abc"}} {
		for _, target := range []string{"/v2/", "/v2/r/tags/list", "/v2/_catalog", "/v1/search?q=r"} {
			w := do(t, s, req{method: "GET", target: target, header: h})
			expect(t, w, 401, codeUnauthorized)
			if got := w.Header().Get("WWW-Authenticate"); got != `Basic realm="berth-registry"` {
				t.Fatalf("challenge %q", got)
			}
		}
	}
	if w := do(t, s, req{method: "GET", target: "/v2/", header: basic("alice", "s3cret")}); w.Code != 200 {
		t.Fatalf("alice: %d", w.Code)
	}
	d := sha([]byte("x"))
	if w := do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/?digest=" + d, body: []byte("x"), header: basic("bob", "hunter2")}); w.Code != 201 {
		t.Fatalf("bob push: %d", w.Code)
	}
}

func TestTokenAuth(t *testing.T) {
	s := newTestServer(t, Config{Htpasswd: htpasswd(t, "alice", "s3cret"), TokenAuth: true, TokenTTL: time.Minute})
	w := do(t, s, req{method: "GET", target: "/v2/"})
	expect(t, w, 401, codeUnauthorized)
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="http://example.com/token",service="berth-registry"` {
		t.Fatalf("base challenge %q", got)
	}
	w = do(t, s, req{method: "GET", target: "/v2/team/app/manifests/latest"})
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="http://example.com/token",service="berth-registry",scope="repository:team/app:pull"` {
		t.Fatalf("pull challenge %q", got)
	}
	w = do(t, s, req{method: "POST", target: "/v2/team/app/blobs/uploads/"})
	if got := w.Header().Get("WWW-Authenticate"); !strings.HasSuffix(got, `scope="repository:team/app:push"`) {
		t.Fatalf("push challenge %q", got)
	}
	token := func(h map[string]string, scopes ...string) (string, int) {
		target := "/token?service=berth-registry"
		for _, sc := range scopes {
			target += "&scope=" + sc
		}
		w := do(t, s, req{method: "GET", target: target, header: h})
		var v struct {
			Token     string `json:"token"`
			ExpiresIn int    `json:"expires_in"`
		}
		json.Unmarshal(w.Body.Bytes(), &v)
		return v.Token, w.Code
	}
	if _, code := token(nil); code != 401 {
		t.Fatalf("token without credentials: %d", code)
	}
	if _, code := token(basic("alice", "nope")); code != 401 {
		t.Fatalf("token with a wrong password: %d", code)
	}
	// docker login asks without a scope: the token opens /v2/ only.
	login, code := token(basic("alice", "s3cret"))
	if code != 200 || login == "" {
		t.Fatalf("login token: %d", code)
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	if w := do(t, s, req{method: "GET", target: "/v2/", header: bearer(login)}); w.Code != 200 {
		t.Fatalf("/v2/ with token: %d", w.Code)
	}
	w = do(t, s, req{method: "GET", target: "/v2/team/app/tags/list", header: bearer(login)})
	expect(t, w, 401, codeUnauthorized)
	if !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("insufficient scope challenge %q", w.Header().Get("WWW-Authenticate"))
	}
	pull, _ := token(basic("alice", "s3cret"), "repository:team/app:pull")
	push, _ := token(basic("alice", "s3cret"), "repository:team/app:pull,push", "repository:other:pull")
	d := sha([]byte("x"))
	expect(t, do(t, s, req{method: "POST", target: "/v2/team/app/blobs/uploads/?digest=" + d, body: []byte("x"), header: bearer(pull)}), 401, codeUnauthorized)
	if w := do(t, s, req{method: "POST", target: "/v2/team/app/blobs/uploads/?digest=" + d, body: []byte("x"), header: bearer(push)}); w.Code != 201 {
		t.Fatalf("push with token: %d %s", w.Code, w.Body.String())
	}
	if w := do(t, s, req{method: "HEAD", target: "/v2/team/app/blobs/" + d, header: bearer(pull)}); w.Code != 200 {
		t.Fatalf("pull with token: %d", w.Code)
	}
	// Scoped to its repository: not another, not delete.
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/other/tags/list", header: bearer(push)}), 401, codeUnauthorized)
	expect(t, do(t, s, req{method: "DELETE", target: "/v2/team/app/blobs/" + d, header: bearer(push)}), 401, codeUnauthorized)
	// A mount from a repository the token cannot pull from is an upload.
	if w := do(t, s, req{method: "POST", target: "/v2/other/blobs/uploads/?mount=" + d + "&from=team/app", header: bearer(push)}); w.Code != 401 {
		t.Fatalf("mount into a repository without push: %d", w.Code)
	}
	// Basic credentials work too (docker's daemon sends them to /v1/search).
	if w := do(t, s, req{method: "GET", target: "/v1/search?q=team", header: basic("alice", "s3cret")}); w.Code != 200 {
		t.Fatalf("search with Basic credentials in token mode: %d", w.Code)
	}
	expect(t, do(t, s, req{method: "GET", target: "/v1/search?q=team", header: basic("alice", "x")}), 401, codeUnauthorized)
	// A mount asks for the source's pull scope too.
	w = do(t, s, req{method: "POST", target: "/v2/team/app/blobs/uploads/?mount=" + d + "&from=elsewhere", header: bearer(push)})
	if got := w.Header().Get("WWW-Authenticate"); w.Code != 401 || !strings.Contains(got, `scope="repository:team/app:push repository:elsewhere:pull"`) {
		t.Fatalf("mount challenge: %d %q", w.Code, got)
	}
	// The OAuth2 password grant.
	w = do(t, s, req{method: "POST", target: "/token", body: []byte("grant_type=password&username=alice&password=s3cret&service=berth-registry&scope=registry:catalog:*"),
		header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	var v struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(w.Body.Bytes(), &v)
	if w := do(t, s, req{method: "GET", target: "/v2/_catalog", header: bearer(v.AccessToken)}); w.Code != 200 {
		t.Fatalf("catalog with a password-grant token: %d", w.Code)
	}
	// Tampered, foreign and expired tokens are refused.
	body, sig, _ := strings.Cut(pull, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	forged := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), "team/app", "team/xxx", 1))) + "." + sig
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/xxx/tags/list", header: bearer(forged)}), 401, codeUnauthorized)
	other := newTestServer(t, Config{Htpasswd: htpasswd(t, "alice", "s3cret"), TokenAuth: true})
	expect(t, do(t, other, req{method: "GET", target: "/v2/", header: bearer(login)}), 401, codeUnauthorized)
	s.auth.cfg.TokenTTL = -time.Second
	expired, _ := token(basic("alice", "s3cret"), "repository:team/app:pull")
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/app/tags/list", header: bearer(expired)}), 401, codeUnauthorized)
	// The key outlives a restart: a token from before still works.
	again := newTestServer(t, Config{Root: s.Root(), Htpasswd: htpasswd(t, "alice", "s3cret"), TokenAuth: true})
	if w := do(t, again, req{method: "GET", target: "/v2/team/app/tags/list", header: bearer(pull)}); w.Code != 200 {
		t.Fatalf("token after restart: %d", w.Code)
	}
	_ = http.StatusOK
}
