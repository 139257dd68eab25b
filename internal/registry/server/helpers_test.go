package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type req struct {
	method, target string
	body           []byte
	header         map[string]string
}

func do(t *testing.T, h http.Handler, r req) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.target, body)
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, hr)
	return w
}

// errCode is the first error code of a spec error body, or "".
func errCode(w *httptest.ResponseRecorder) string {
	var b errorBody
	if json.Unmarshal(w.Body.Bytes(), &b) != nil || len(b.Errors) == 0 {
		return ""
	}
	return b.Errors[0].Code
}

func expect(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status || errCode(w) != code {
		t.Fatalf("got %d %q (%s), want %d %q", w.Code, errCode(w), w.Body.String(), status, code)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func sha512of(b []byte) string {
	s := sha512.Sum512(b)
	return "sha512:" + hex.EncodeToString(s[:])
}

// pushBlob uploads b monolithically to repo and returns its digest.
func pushBlob(t *testing.T, h http.Handler, repo string, b []byte) string {
	t.Helper()
	d := sha(b)
	w := do(t, h, req{method: "POST", target: "/v2/" + repo + "/blobs/uploads/?digest=" + d, body: b})
	if w.Code != http.StatusCreated {
		t.Fatalf("push blob: %d %s", w.Code, w.Body.String())
	}
	return d
}

type desc struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int               `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// image pushes a config and layers to repo and returns an OCI manifest
// naming them (not pushed).
func image(t *testing.T, h http.Handler, repo string, layers ...string) []byte {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtOCIManifest,
		"config":        desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: pushBlob(t, h, repo, cfg), Size: len(cfg)},
	}
	ls := []desc{}
	for _, l := range layers {
		ls = append(ls, desc{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: pushBlob(t, h, repo, []byte(l)), Size: len(l)})
	}
	m["layers"] = ls
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putManifest(t *testing.T, h http.Handler, repo, ref string, m []byte, mt string) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, h, req{method: "PUT", target: fmt.Sprintf("/v2/%s/manifests/%s", repo, ref), body: m, header: map[string]string{"Content-Type": mt}})
}
