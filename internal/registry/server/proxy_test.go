package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestPullThroughCache(t *testing.T) {
	up := newTestServer(t, Config{Htpasswd: htpasswd(t, "alice", "up-pw"), TokenAuth: true})
	cred := basic("alice", "up-pw")
	cfg := []byte(`{"os":"linux"}`)
	layer := bytes.Repeat([]byte("cached layer "), 10000)
	var digests []string
	for _, b := range [][]byte{cfg, layer} {
		d := sha(b)
		if w := do(t, up, req{method: "POST", target: "/v2/library/app/blobs/uploads/?digest=" + d, body: b, header: cred}); w.Code != 201 {
			t.Fatal(w.Code)
		}
		digests = append(digests, d)
	}
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		mtOCIManifest, digests[0], len(cfg), digests[1], len(layer)))
	h := map[string]string{"Content-Type": mtOCIManifest, "Authorization": cred["Authorization"]}
	if w := do(t, up, req{method: "PUT", target: "/v2/library/app/manifests/1.0", body: m, header: h}); w.Code != 201 {
		t.Fatal(w.Code, w.Body.String())
	}
	var blobGets atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Header.Get("Authorization") != "" {
			blobGets.Add(1)
		}
		up.ServeHTTP(w, r)
	}))
	p := newTestServer(t, Config{ProxyRemoteURL: ts.URL, ProxyUsername: "alice", ProxyPassword: "up-pw"})

	w := do(t, p, req{method: "GET", target: "/v2/library/app/manifests/1.0"})
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), m) || w.Header().Get("Docker-Content-Digest") != sha(m) || w.Header().Get("Content-Type") != mtOCIManifest {
		t.Fatalf("manifest through the cache: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	// Twenty clients at once: the layer is fetched once.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := do(t, p, req{method: "GET", target: "/v2/library/app/blobs/" + digests[1]})
			if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), layer) {
				t.Errorf("layer: %d, %d bytes", w.Code, w.Body.Len())
			}
		}()
	}
	wg.Wait()
	if n := blobGets.Load(); n != 1 {
		t.Errorf("upstream served the layer %d times", n)
	}
	if w := do(t, p, req{method: "GET", target: "/v2/library/app/tags/list"}); w.Code != 200 || !strings.Contains(w.Body.String(), `"1.0"`) {
		t.Fatalf("tags: %d %s", w.Code, w.Body.String())
	}
	expect(t, do(t, p, req{method: "GET", target: "/v2/library/app/manifests/2.0"}), 404, codeManifestUnknown)
	expect(t, do(t, p, req{method: "PUT", target: "/v2/library/app/manifests/x", body: m}), 405, codeUnsupported)

	// The upstream gone: the cache still answers.
	do(t, p, req{method: "GET", target: "/v2/library/app/blobs/" + digests[0]})
	ts.Close()
	if w := do(t, p, req{method: "GET", target: "/v2/library/app/manifests/1.0"}); w.Code != 200 {
		t.Fatalf("cached tag, upstream down: %d %s", w.Code, w.Body.String())
	}
	for _, d := range digests {
		if w := do(t, p, req{method: "GET", target: "/v2/library/app/blobs/" + d}); w.Code != 200 {
			t.Fatalf("cached blob, upstream down: %d", w.Code)
		}
	}
	expect(t, do(t, p, req{method: "GET", target: "/v2/library/app/manifests/" + sha([]byte("never"))}), 502, codeUnknown)

	// Without credentials the upstream refuses: a gateway error naming it.
	ts2 := httptest.NewServer(up)
	defer ts2.Close()
	anon := newTestServer(t, Config{ProxyRemoteURL: ts2.URL})
	w = do(t, anon, req{method: "GET", target: "/v2/library/app/manifests/1.0"})
	expect(t, w, 502, codeUnknown)
	if !strings.Contains(w.Body.String(), "401") {
		t.Fatalf("anonymous: %s", w.Body.String())
	}
}

// TestPullThroughCacheVerifies: an upstream that sends other bytes than
// the digest names gets nothing stored.
func TestPullThroughCacheVerifies(t *testing.T) {
	good := []byte("the real layer")
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/blobs/"):
			w.Write([]byte("something else"))
		case strings.Contains(r.URL.Path, "/manifests/"):
			w.Header().Set("Content-Type", mtOCIManifest)
			w.Header().Set("Docker-Content-Digest", sha([]byte("not this")))
			w.Write([]byte(`{"schemaVersion":2}`))
		}
	}))
	defer evil.Close()
	p := newTestServer(t, Config{ProxyRemoteURL: evil.URL})
	expect(t, do(t, p, req{method: "GET", target: "/v2/x/blobs/" + sha(good)}), 502, codeDigestInvalid)
	expect(t, do(t, p, req{method: "GET", target: "/v2/x/manifests/latest"}), 502, codeDigestInvalid)
	if blobExists(p, sha(good)) || blobExists(p, sha([]byte("something else"))) {
		t.Fatal("unverified content stored")
	}
	if _, err := New(Config{Root: t.TempDir(), ProxyRemoteURL: "ftp://x"}); err == nil {
		t.Fatal("ftp upstream accepted")
	}
}
