package server

// Regression tests of attacks on the server: each names what it tries.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// forge signs claims with key as the server's tokens are signed.
func forge(key []byte, c claims) string {
	body, _ := json.Marshal(c)
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(body) + "." + enc.EncodeToString(mac.Sum(nil))
}

// A token.key left empty or short (a crash while it was first written)
// must not become the signing key: anyone could sign tokens with it.
func TestTokenKeyCutShort(t *testing.T) {
	for _, short := range []string{"", "0123456789"} {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "token.key"), []byte(short), 0o600); err != nil {
			t.Fatal(err)
		}
		s := newTestServer(t, Config{Root: root, Htpasswd: htpasswd(t, "alice", "s3cret"), TokenAuth: true})
		c := claims{Issuer: "berth-registry", Subject: "mallory", Audience: "berth-registry", Expires: time.Now().Add(time.Hour).Unix(),
			Access: []tokenAccess{{Type: "repository", Name: "team/app", Actions: []string{"*"}}}}
		w := do(t, s, req{method: "GET", target: "/v2/team/app/tags/list", header: map[string]string{"Authorization": "Bearer " + forge([]byte(short), c)}})
		expect(t, w, 401, codeUnauthorized)
		key, err := os.ReadFile(filepath.Join(root, "token.key"))
		if err != nil || len(key) < 32 {
			t.Fatalf("key file after start: %d bytes, %v", len(key), err)
		}
		// And the key is stable across a restart.
		again := newTestServer(t, Config{Root: root, Htpasswd: htpasswd(t, "alice", "s3cret"), TokenAuth: true})
		if string(again.auth.key) != string(s.auth.key) {
			t.Fatal("key changed across a restart")
		}
	}
}

// An unknown user must cost a bcrypt comparison of the users' own cost
// (htpasswd -B defaults to 5; a fixed cost 10 tells names apart by
// time), and an entry that only looks like bcrypt is refused at start.
func TestHtpasswdCosts(t *testing.T) {
	s := newTestServer(t, Config{Htpasswd: htpasswd(t, "alice", "s3cret")}) // bcrypt.MinCost
	if c, err := bcrypt.Cost(s.auth.dummy); err != nil || c != bcrypt.MinCost {
		t.Fatalf("unknown-user hash cost %d (%v), want %d", c, err, bcrypt.MinCost)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(p, []byte("alice:$2y$garbage\n"), 0o600)
	if _, err := New(Config{Root: t.TempDir(), Htpasswd: p}); err == nil || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("a broken bcrypt entry: %v", err)
	}
}

// A client that starts a body and then sends nothing (slow drip,
// Content-Length larger than what comes) must not hold its request
// forever.
func TestStalledBodyEnds(t *testing.T) {
	s := newTestServer(t, Config{BodyTimeout: 200 * time.Millisecond})
	ts := httptest.NewServer(s)
	defer ts.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	for _, method := range []string{"PATCH", "PUT", "POST-monolithic", "PUT-manifest"} {
		resp, err := client.Post(ts.URL+"/v2/stall/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := ts.URL + resp.Header.Get("Location")
		target, m := loc, method
		switch method {
		case "PUT":
			target += "?digest=" + sha([]byte("x"))
		case "POST-monolithic":
			target, m = ts.URL+"/v2/stall/blobs/uploads/?digest="+sha([]byte("x")), "POST"
		case "PUT-manifest":
			target, m = ts.URL+"/v2/stall/manifests/latest", "PUT"
		}
		pr, pw := io.Pipe()
		go func() { pw.Write([]byte("some bytes")) }() // and then nothing
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		// The transport waits for its body writer: end it with the request.
		go func() { <-ctx.Done(); pw.CloseWithError(ctx.Err()) }()
		hr, _ := http.NewRequestWithContext(ctx, m, target, pr)
		hr.ContentLength = 1 << 20
		resp, err = client.Do(hr)
		cancel()
		pw.Close()
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s: the server still waits for the body", method)
			}
			continue // the server closed the connection: fine
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("%s: stalled body answered %d", method, resp.StatusCode)
		}
	}
}

// Upload sessions are bounded; idle ones make room for new ones.
func TestUploadSessionsBounded(t *testing.T) {
	s := newTestServer(t, Config{})
	s.maxSessions = 3
	var locs []string
	for i := 0; i < 3; i++ {
		w := do(t, s, req{method: "POST", target: "/v2/many/blobs/uploads/"})
		if w.Code != 202 {
			t.Fatalf("session %d: %d", i, w.Code)
		}
		locs = append(locs, w.Header().Get("Location"))
	}
	expect(t, do(t, s, req{method: "POST", target: "/v2/many/blobs/uploads/"}), 429, codeTooManyRequests)
	expect(t, do(t, s, req{method: "POST", target: "/v2/many/blobs/uploads/?digest=" + sha([]byte("x")), body: []byte("x")}), 429, codeTooManyRequests)
	// A session in use keeps its place; an idle one gives it up.
	s.sessMu.Lock()
	for _, ss := range s.sessions {
		ss.used = time.Now().Add(-2 * sessionIdle)
	}
	s.sessMu.Unlock()
	busy, err := s.session("many", strings.TrimPrefix(locs[0], "/v2/many/blobs/uploads/"))
	if err != nil {
		t.Fatal(err)
	}
	s.sessMu.Lock()
	busy.used = time.Now().Add(-2 * sessionIdle)
	s.sessMu.Unlock()
	if w := do(t, s, req{method: "POST", target: "/v2/many/blobs/uploads/"}); w.Code != 202 {
		t.Fatalf("after idle sessions: %d %s", w.Code, w.Body.String())
	}
	busy.mu.Unlock()
	if w := do(t, s, req{method: "GET", target: locs[0]}); w.Code != 204 {
		t.Fatalf("the busy session was dropped: %d", w.Code)
	}
	expect(t, do(t, s, req{method: "GET", target: locs[1]}), 404, codeBlobUploadUnknown)
}

// Symbolic links planted in the storage tree (by a local user, a
// restored backup) that lead out of the root are never followed: the
// server neither writes nor reads through them.
func TestPlantedSymlinksStayInRoot(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	// Each case starts from an outside dir holding only the secret.
	reset := func(t *testing.T) {
		ents, _ := os.ReadDir(outside)
		for _, e := range ents {
			os.RemoveAll(filepath.Join(outside, e.Name()))
		}
		if err := os.WriteFile(secret, []byte("top secret"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	plant := func(t *testing.T, s *Server, rel, target string) {
		t.Helper()
		p := rel
		if !filepath.IsAbs(p) {
			p = filepath.Join(s.Root(), rel)
		}
		os.RemoveAll(p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	untouched := func(t *testing.T) {
		t.Helper()
		ents, _ := os.ReadDir(outside)
		if len(ents) != 1 {
			t.Fatalf("the server wrote outside its root: %v", ents)
		}
		if b, _ := os.ReadFile(secret); string(b) != "top secret" {
			t.Fatalf("the server changed a file outside its root: %q", b)
		}
	}
	blob := []byte("a layer")
	d, _ := parseDigest(sha(blob))

	t.Run("repository dir", func(t *testing.T) {
		reset(t)
		s := newTestServer(t, Config{})
		plant(t, s, "repositories/evil", outside)
		w := do(t, s, req{method: "POST", target: "/v2/evil/blobs/uploads/?digest=" + d.String(), body: blob})
		if w.Code < 400 {
			t.Errorf("push through a planted repository link: %d", w.Code)
		}
		putManifest(t, s, "evil", "latest", []byte(`{"schemaVersion":2,"mediaType":"`+mtOCIIndex+`","manifests":[]}`), mtOCIIndex)
		untouched(t)
	})
	t.Run("blob prefix dir", func(t *testing.T) {
		reset(t)
		s := newTestServer(t, Config{})
		plant(t, s, filepath.Join("blobs", "sha256", d.hex[:2]), outside)
		w := do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/?digest=" + d.String(), body: blob})
		if w.Code < 400 {
			t.Errorf("push through a planted blob dir link: %d", w.Code)
		}
		untouched(t)
	})
	t.Run("upload data", func(t *testing.T) {
		reset(t)
		s := newTestServer(t, Config{})
		w := do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/"})
		loc := w.Header().Get("Location")
		id := loc[strings.LastIndexByte(loc, '/')+1:]
		plant(t, s, s.dataPath(id), secret)
		s.sessions = map[string]*session{} // as after a restart
		do(t, s, req{method: "PATCH", target: loc, body: []byte(" appended")})
		do(t, s, req{method: "PUT", target: loc + "?digest=" + sha([]byte("top secret")), body: nil})
		untouched(t)
		w = do(t, s, req{method: "GET", target: "/v2/r/blobs/" + sha([]byte("top secret"))})
		if strings.Contains(w.Body.String(), "top secret") {
			t.Fatal("an upload committed a file from outside the root")
		}
	})
	t.Run("blob file read", func(t *testing.T) {
		reset(t)
		s := newTestServer(t, Config{})
		pushBlob(t, s, "r", blob)
		plant(t, s, s.store.blobPath(d), secret)
		w := do(t, s, req{method: "GET", target: "/v2/r/blobs/" + d.String()})
		if strings.Contains(w.Body.String(), "top secret") {
			t.Fatal("served a file outside the root")
		}
	})
	t.Run("tmp and uploads dirs", func(t *testing.T) {
		reset(t)
		for _, dir := range []string{"tmp", "uploads"} {
			root := t.TempDir()
			os.Symlink(outside, filepath.Join(root, dir))
			if s, err := New(Config{Root: root}); err == nil {
				do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/?digest=" + d.String(), body: blob})
				do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/"})
			}
			untouched(t)
		}
	})
}

// Numbers in queries are the client's: a page far past the end (whose
// offset overflows an int) answers an empty page, not a panic.
func TestSearchPageOverflow(t *testing.T) {
	s := newTestServer(t, Config{})
	pushBlob(t, s, "team/app", []byte("x"))
	for _, q := range []string{"page=9223372036854775807", "page=368934881474191033&n=50", "page=4611686018427387905&n=2", "page=2", "page=-1&n=-5"} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic %v", q, r)
				}
			}()
			w := do(t, s, req{method: "GET", target: "/v1/search?q=team&" + q})
			var v struct {
				Results []searchResult `json:"results"`
			}
			json.Unmarshal(w.Body.Bytes(), &v)
			if want := strings.HasPrefix(q, "page=-1"); w.Code != 200 || (len(v.Results) == 1) != want {
				t.Errorf("%s: %d %s", q, w.Code, w.Body.String())
			}
		}()
	}
	for _, q := range []string{"n=9223372036854775807", "n=99999999999999999999", "n=-1", "last=" + strings.Repeat("z", 5000)} {
		w := do(t, s, req{method: "GET", target: "/v2/_catalog?" + q})
		if w.Code != 200 && errCode(w) != codePaginationInvalid {
			t.Errorf("catalog %s: %d %s", q, w.Code, w.Body.String())
		}
	}
}

// An upload belongs to the repository that began it: another repository
// can neither read, extend, finish nor cancel it.
func TestUploadsStayInTheirRepository(t *testing.T) {
	s := newTestServer(t, Config{})
	w := do(t, s, req{method: "POST", target: "/v2/a/blobs/uploads/"})
	loc := w.Header().Get("Location")
	id := loc[strings.LastIndexByte(loc, '/')+1:]
	do(t, s, req{method: "PATCH", target: loc, body: []byte("secret part")})
	for _, m := range []string{"GET", "PATCH", "PUT", "DELETE"} {
		expect(t, do(t, s, req{method: m, target: "/v2/b/blobs/uploads/" + id + "?digest=" + sha([]byte("secret part")), body: []byte("")}), 404, codeBlobUploadUnknown)
	}
	s.sessions = map[string]*session{} // and after a restart
	expect(t, do(t, s, req{method: "PUT", target: "/v2/b/blobs/uploads/" + id + "?digest=" + sha([]byte("secret part"))}), 404, codeBlobUploadUnknown)
	if w := do(t, s, req{method: "PUT", target: loc + "?digest=" + sha([]byte("secret part"))}); w.Code != 201 {
		t.Fatalf("the owner's upload was disturbed: %d %s", w.Code, w.Body.String())
	}
	expect(t, do(t, s, req{method: "HEAD", target: "/v2/b/blobs/" + sha([]byte("secret part"))}), 404, "")
}

// Content must match the digest it is stored under, whatever the
// algorithm; a mismatch leaves nothing behind.
func TestDigestsAreChecked(t *testing.T) {
	s := newTestServer(t, Config{})
	m := []byte(`{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","manifests":[]}`)
	other := []byte(`{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","manifests":[] }`)
	for _, ref := range []string{sha(other), sha512of(other)} {
		expect(t, putManifest(t, s, "r", ref, m, mtOCIIndex), 400, codeDigestInvalid)
	}
	w := putManifest(t, s, "r", sha512of(m), m, mtOCIIndex)
	if w.Code != 201 || w.Header().Get("Docker-Content-Digest") != sha512of(m) {
		t.Fatalf("sha512 manifest: %d %v", w.Code, w.Header())
	}
	w = do(t, s, req{method: "HEAD", target: "/v2/r/manifests/" + sha512of(m)})
	if w.Code != 200 || w.Header().Get("Content-Length") != fmt.Sprint(len(m)) || w.Header().Get("Docker-Content-Digest") != sha512of(m) {
		t.Fatalf("HEAD sha512 manifest: %d %v", w.Code, w.Header())
	}
	expect(t, putManifest(t, s, "r", "sha384:"+strings.Repeat("a", 96), m, mtOCIIndex), 400, codeDigestInvalid)
	// Blobs: monolithic and chunked, sha256 and sha512.
	for _, want := range []string{sha([]byte("other")), sha512of([]byte("other"))} {
		expect(t, do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/?digest=" + want, body: []byte("content")}), 400, codeDigestInvalid)
		loc := do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/"}).Header().Get("Location")
		do(t, s, req{method: "PATCH", target: loc, body: []byte("content")})
		expect(t, do(t, s, req{method: "PUT", target: loc + "?digest=" + want}), 400, codeDigestInvalid)
		expect(t, do(t, s, req{method: "GET", target: loc}), 404, codeBlobUploadUnknown)
	}
	for _, dir := range []string{"uploads", "tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(s.Root(), dir)); len(ents) != 0 {
			t.Errorf("%s/ keeps %d entries after refused uploads", dir, len(ents))
		}
	}
	for _, d := range []string{sha([]byte("content")), sha512of([]byte("content"))} {
		if blobExists(s, d) {
			t.Errorf("refused content stored as %s", d)
		}
	}
	// Ranges past the end are refused; HEAD tells the true size.
	d := pushBlob(t, s, "r", []byte("0123456789"))
	if w := do(t, s, req{method: "GET", target: "/v2/r/blobs/" + d, header: map[string]string{"Range": "bytes=10-20"}}); w.Code != 416 {
		t.Errorf("range past the end: %d", w.Code)
	}
	if w := do(t, s, req{method: "HEAD", target: "/v2/r/blobs/" + d}); w.Header().Get("Content-Length") != "10" || w.Header().Get("Docker-Content-Digest") != d {
		t.Errorf("HEAD blob: %v", w.Header())
	}
}

// Manifests the parser would choke on are refused as MANIFEST_INVALID or
// SIZE_INVALID, the size enforced while reading (no Content-Length).
func TestHostileManifests(t *testing.T) {
	s := newTestServer(t, Config{})
	deep := []byte(`{"schemaVersion":2,"annotations":` + strings.Repeat(`{"a":`, 20000) + `1` + strings.Repeat(`}`, 20000) + `}`)
	expect(t, putManifest(t, s, "r", "deep", deep, mtOCIManifest), 400, codeManifestInvalid)
	expect(t, putManifest(t, s, "r", "notjson", []byte("\x00\x01"), mtOCIManifest), 400, codeManifestInvalid)
	big := io.MultiReader(strings.NewReader(`{"schemaVersion":2,"x":"`), io.LimitReader(zeros{}, maxManifestSize+10))
	hr := httptest.NewRequest("PUT", "/v2/r/manifests/big", big)
	hr.ContentLength = -1
	hr.Header.Set("Content-Type", mtOCIManifest)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, hr)
	expect(t, w, 413, codeSizeInvalid)
	// An index naming itself or a missing child is refused.
	expect(t, putManifest(t, s, "r", "idx", []byte(`{"schemaVersion":2,"mediaType":"`+mtOCIIndex+`","manifests":[{"mediaType":"`+mtOCIIndex+`","digest":"`+sha([]byte("x"))+`","size":1}]}`), mtOCIIndex), 400, codeManifestBlobUnknown)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// Tokens: forged shapes, other audiences, other repositories and actions.
func TestTokenForgery(t *testing.T) {
	s := newTestServer(t, Config{Htpasswd: htpasswd(t, "alice", "s3cret"), TokenAuth: true})
	now := time.Now()
	ok := claims{Issuer: "berth-registry", Subject: "alice", Audience: "berth-registry", Expires: now.Add(time.Hour).Unix(),
		Access: []tokenAccess{{Type: "repository", Name: "a", Actions: []string{"pull"}}}}
	enc := base64.RawURLEncoding
	body, _ := json.Marshal(ok)
	for name, tok := range map[string]string{
		"alg none JWT":   enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(body) + ".",
		"unsigned":       enc.EncodeToString(body) + ".",
		"no signature":   enc.EncodeToString(body),
		"empty":          "",
		"other key":      forge([]byte(strings.Repeat("k", 64)), ok),
		"padded base64":  base64.URLEncoding.EncodeToString(body) + "." + strings.Split(s.auth.sign(ok), ".")[1],
		"other audience": s.auth.sign(claims{Audience: "elsewhere", Expires: ok.Expires, Access: ok.Access}),
		"expired":        s.auth.sign(claims{Audience: ok.Audience, Expires: now.Add(-time.Second).Unix(), Access: ok.Access}),
	} {
		w := do(t, s, req{method: "GET", target: "/v2/a/tags/list", header: map[string]string{"Authorization": "Bearer " + tok}})
		if w.Code != 401 {
			t.Errorf("%s: %d", name, w.Code)
		}
	}
	pull := map[string]string{"Authorization": "Bearer " + s.auth.sign(ok)}
	for _, r := range []req{
		{method: "GET", target: "/v2/b/tags/list"},
		{method: "GET", target: "/v2/a/b/tags/list"},
		{method: "GET", target: "/v2/_catalog"},
		{method: "GET", target: "/v1/search?q=a"},
		{method: "POST", target: "/v2/a/blobs/uploads/"},
		{method: "DELETE", target: "/v2/a/manifests/latest"},
		{method: "PUT", target: "/v2/a/manifests/latest", body: []byte("{}")},
	} {
		r.header = pull
		expect(t, do(t, s, r), 401, codeUnauthorized)
	}
	// A scope for an invalid name or an unknown action is not granted.
	w := do(t, s, req{method: "GET", target: "/token?scope=repository:a/../b:pull&scope=repository:a:admin&scope=registry:other:*", header: basic("alice", "s3cret")})
	var v struct{ Token string }
	json.Unmarshal(w.Body.Bytes(), &v)
	c, valid := s.auth.verify(v.Token)
	if !valid || len(c.Access) != 0 {
		t.Errorf("odd scopes granted: %+v", c)
	}
}

// A TLS upstream whose challenge names a plain-HTTP realm does not get
// the upstream credentials sent in clear text; the cache stores nothing.
func TestProxyRealmDowngrade(t *testing.T) {
	var leaked atomic.Bool
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"token":"t"}`)
	}))
	defer plain.Close()
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+plain.URL+`/token",service="up"`)
		w.WriteHeader(401)
	}))
	defer up.Close()
	p := newTestServer(t, Config{ProxyRemoteURL: up.URL, ProxyUsername: "alice", ProxyPassword: "up-pw"})
	p.proxy.client = up.Client()
	w := do(t, p, req{method: "GET", target: "/v2/library/app/manifests/1.0"})
	if w.Code < 400 {
		t.Fatalf("answered %d", w.Code)
	}
	if leaked.Load() {
		t.Fatal("upstream credentials sent to a plain-HTTP realm")
	}
	for _, realm := range []string{"file:///etc/passwd", "ftp://x/token", "//nohost"} {
		if _, err := p.proxy.fetchToken(context.Background(), map[string]string{"realm": realm}, "repository:a:pull"); err == nil {
			t.Errorf("realm %q accepted", realm)
		}
	}
}

// lineWriter hands each log line to a channel.
type lineWriter chan string

func (c lineWriter) Write(b []byte) (int, error) {
	select {
	case c <- string(b):
	default:
	}
	return len(b), nil
}

// A client that asks for a large blob and then reads nothing (slow
// read) loses its connection after the timeout: the handler ends.
func TestStalledReaderEnds(t *testing.T) {
	logs := make(lineWriter, 100)
	s := newTestServer(t, Config{BodyTimeout: 300 * time.Millisecond, Log: logs})
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB: more than socket buffers hold
	d := pushBlob(t, s, "r", big)
	ts := httptest.NewServer(s)
	defer ts.Close()
	// A well-behaved client still gets all of it, in sendfile chunks (from
	// a server of the default timeout: a loaded test machine may starve
	// this reader for longer than the short one).
	patient := httptest.NewServer(newTestServer(t, Config{Root: s.Root()}))
	defer patient.Close()
	resp, err := http.Get(patient.URL + "/v2/r/blobs/" + d)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != int64(len(big)) {
		t.Fatalf("read %d of %d bytes", n, len(big))
	}
	for len(logs) > 0 {
		<-logs
	}
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v2/r/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n", d)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case l := <-logs:
			if strings.Contains(l, "/blobs/") {
				return // the handler gave up on the silent reader
			}
		case <-deadline:
			t.Fatal("the server still writes to a client that reads nothing")
		}
	}
}

// Clients choose the repository names a cache asks its upstream about:
// the upstream tokens it keeps, one per repository, stay bounded.
func TestProxyTokenCacheBounded(t *testing.T) {
	var up *httptest.Server
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			io.WriteString(w, `{"token":"t","expires_in":300}`)
			return
		}
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+up.URL+`/token",service="up"`)
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(404)
	}))
	defer up.Close()
	p := newTestServer(t, Config{ProxyRemoteURL: up.URL})
	for i := range maxCachedTokens + 50 {
		do(t, p, req{method: "GET", target: fmt.Sprintf("/v2/r%d/manifests/latest", i)})
	}
	p.proxy.mu.Lock()
	n := len(p.proxy.tokens)
	p.proxy.mu.Unlock()
	if n == 0 || n > maxCachedTokens {
		t.Fatalf("%d cached tokens", n)
	}
}

// An upstream that lies to the cache: an oversized or non-JSON
// manifest, a redirect to file:// or to a host that would collect the
// upstream credentials. Nothing unverified is stored and the
// credentials stay with the upstream.
func TestProxyUpstreamLies(t *testing.T) {
	var leaked atomic.Bool
	good := []byte("the real layer")
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
		w.Write(good)
	}))
	defer other.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="up"`)
			w.WriteHeader(401)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/manifests/huge"):
			w.Header().Set("Content-Type", mtOCIManifest)
			w.Write([]byte(`{"schemaVersion":2,"x":"` + strings.Repeat("a", maxManifestSize) + `"}`))
		case strings.HasSuffix(r.URL.Path, "/manifests/notjson"):
			w.Header().Set("Content-Type", mtOCIManifest)
			w.Write([]byte("<html>"))
		case strings.HasSuffix(r.URL.Path, "/manifests/file"):
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case strings.Contains(r.URL.Path, "/blobs/"):
			http.Redirect(w, r, other.URL+"/cdn/blob", http.StatusTemporaryRedirect)
		}
	}))
	defer up.Close()
	p := newTestServer(t, Config{ProxyRemoteURL: up.URL, ProxyUsername: "alice", ProxyPassword: "up-pw"})
	expect(t, do(t, p, req{method: "GET", target: "/v2/x/manifests/huge"}), 502, codeManifestInvalid)
	expect(t, do(t, p, req{method: "GET", target: "/v2/x/manifests/notjson"}), 502, codeManifestInvalid)
	expect(t, do(t, p, req{method: "GET", target: "/v2/x/manifests/file"}), 502, codeUnknown)
	// A blob redirected elsewhere (as registries redirect to a CDN) is
	// verified there, without the upstream's credentials.
	if w := do(t, p, req{method: "GET", target: "/v2/x/blobs/" + sha(good)}); w.Code != 200 || w.Body.String() != string(good) {
		t.Fatalf("redirected blob: %d %s", w.Code, w.Body.String())
	}
	if leaked.Load() {
		t.Fatal("upstream credentials followed a redirect to another host")
	}
	expect(t, do(t, p, req{method: "GET", target: "/v2/x/blobs/" + sha([]byte("other"))}), 502, codeDigestInvalid)
	for _, tag := range []string{"huge", "notjson", "file"} {
		if p.store.exists(p.store.tagPath("x", tag)) {
			t.Errorf("tag %s cached", tag)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(p.Root(), "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ keeps %d files", len(ents))
	}
}

// The first client of a cache fetch leaving (its connection closed)
// does not abort the fetch that other clients of the same manifest wait
// on: the manifest still arrives in the cache.
func TestProxyFetchOutlivesFirstClient(t *testing.T) {
	m := []byte(`{"schemaVersion":2,"mediaType":"` + mtOCIIndex + `","manifests":[]}`)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started) })
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", mtOCIIndex)
		w.Write(m)
	}))
	defer up.Close()
	p := newTestServer(t, Config{ProxyRemoteURL: up.URL})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		hr := httptest.NewRequest("GET", "/v2/x/manifests/latest", nil).WithContext(ctx)
		p.ServeHTTP(httptest.NewRecorder(), hr)
	}()
	<-started
	cancel()
	close(release)
	<-done // the first client runs the fetch: it is over now
	if !p.store.exists(p.store.tagPath("x", "latest")) {
		t.Fatal("the fetch died with its first client")
	}
}

// GC with no grace at all (only the touched set protects) racing pushes
// that reuse old orphaned blobs by HEAD, by mount and by re-upload: a
// push may be refused (MANIFEST_BLOB_UNKNOWN, the client uploads again)
// but a manifest the server accepted is whole afterwards.
func TestGCRacesResurrection(t *testing.T) {
	// The race is narrow: several rounds catch it on a broken server.
	for range 8 {
		gcRaceRound(t)
	}
}

func gcRaceRound(t *testing.T) {
	s := newTestServer(t, Config{GCGrace: time.Nanosecond})
	const n = 12
	var old []string
	for i := range n {
		old = append(old, pushBlob(t, s, "src", fmt.Appendf(nil, "old %d", i)))
	}
	age(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for ctx.Err() == nil {
			s.GC(ctx)
		}
	}()
	cfg := []byte(`{"os":"linux"}`)
	type pushed struct {
		repo string
		m    []byte
		refs []string
	}
	results := make(chan pushed, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("dst/%d", i)
			layer := old[i]
			switch i % 3 {
			case 0: // HEAD says it is there: name it
				if w := do(t, s, req{method: "HEAD", target: "/v2/src/blobs/" + layer}); w.Code != 200 {
					return
				}
				repo = "src"
			case 1: // mount it from src
				if w := do(t, s, req{method: "POST", target: "/v2/" + repo + "/blobs/uploads/?mount=" + layer + "&from=src"}); w.Code != 201 {
					return
				}
			case 2: // upload it again
				pushBlob(t, s, repo, fmt.Appendf(nil, "old %d", i))
			}
			cd := pushBlob(t, s, repo, cfg)
			m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":1}],"annotations":{"i":"%d"}}`,
				mtOCIManifest, cd, len(cfg), layer, i)
			if w := putManifest(t, s, repo, fmt.Sprintf("t%d", i), m, mtOCIManifest); w.Code == 201 {
				results <- pushed{repo, m, []string{cd, layer}}
			} else if errCode(w) != codeManifestBlobUnknown {
				t.Errorf("%s: %d %s", repo, w.Code, w.Body.String())
			}
		}()
	}
	wg.Wait()
	cancel()
	<-gcDone
	close(results)
	gc(t, s)
	accepted := 0
	for p := range results {
		accepted++
		for _, d := range append(p.refs, sha(p.m)) {
			pd, _ := parseDigest(d)
			if !blobExists(s, d) {
				t.Errorf("%s: blob %s of an accepted manifest collected", p.repo, d)
			}
			if d != sha(p.m) && !s.store.exists(s.store.blobLinkPath(p.repo, pd)) {
				t.Errorf("%s: link to %s of an accepted manifest collected", p.repo, d)
			}
		}
	}
	if accepted == 0 {
		t.Error("no push accepted")
	}
}

// With a size limit, an upload that grows past it (in one body or over
// chunks, whatever Content-Length said) is refused and leaves nothing.
func TestMaxBlobSize(t *testing.T) {
	s := newTestServer(t, Config{MaxBlobSize: 10})
	if w := do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/?digest=" + sha([]byte("0123456789")), body: []byte("0123456789")}); w.Code != 201 {
		t.Fatalf("a blob at the limit: %d %s", w.Code, w.Body.String())
	}
	expect(t, do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/?digest=" + sha([]byte("0123456789a")), body: []byte("0123456789a")}), 413, codeSizeInvalid)
	loc := do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/"}).Header().Get("Location")
	if w := do(t, s, req{method: "PATCH", target: loc, body: []byte("01234567")}); w.Code != 202 {
		t.Fatalf("first chunk: %d", w.Code)
	}
	expect(t, do(t, s, req{method: "PATCH", target: loc, body: []byte("89a")}), 413, codeSizeInvalid)
	expect(t, do(t, s, req{method: "GET", target: loc}), 404, codeBlobUploadUnknown)
	loc = do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/"}).Header().Get("Location")
	hr := httptest.NewRequest("PUT", loc+"?digest="+sha([]byte("x")), io.LimitReader(zeros{}, 1<<30))
	hr.ContentLength = -1 // a stream that never ends: read up to the limit only
	w := httptest.NewRecorder()
	s.ServeHTTP(w, hr)
	expect(t, w, 413, codeSizeInvalid)
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "uploads")); len(ents) != 0 {
		t.Errorf("uploads/ keeps %d sessions", len(ents))
	}
}

// A cache's upstream that streams a blob without end fills no more than
// the size limit, and nothing is kept.
func TestProxyEndlessBlob(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, io.LimitReader(zeros{}, 1<<30)) // "endless"; the cache stops reading far sooner
	}))
	defer up.Close()
	p := newTestServer(t, Config{ProxyRemoteURL: up.URL, MaxBlobSize: 1 << 20})
	expect(t, do(t, p, req{method: "GET", target: "/v2/x/blobs/" + sha([]byte("x"))}), 502, codeSizeInvalid)
	if ents, _ := os.ReadDir(filepath.Join(p.Root(), "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ keeps %d files", len(ents))
	}
}
