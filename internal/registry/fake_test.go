package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/testutil"
)

// fakeRegistry serves hand-made images and injects faults: enough of the
// distribution API for the client's pull path, token and basic auth, and
// /v1/search.
type fakeRegistry struct {
	mu        sync.Mutex
	blobs     map[digest.Digest][]byte
	manifests map[string]fakeDoc // "repo:ref" (tag or digest)
	hits      map[string]int     // request path -> count
	// fault, when set, may answer a request itself (returns true).
	fault func(w http.ResponseWriter, r *http.Request, n int) bool
	auth  string // "", "basic" or "bearer"
	user  string
	pass  string
	srv   *httptest.Server
}

type fakeDoc struct {
	raw []byte
	mt  string
}

func newFake(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{blobs: map[digest.Digest][]byte{}, manifests: map[string]fakeDoc{}, hits: map[string]int{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

// host is the fake's host:port (a loopback address, so plain HTTP).
func (f *fakeRegistry) host() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeRegistry) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *fakeRegistry) authorized(r *http.Request) bool {
	switch f.auth {
	case "basic":
		u, p, ok := r.BasicAuth()
		return ok && u == f.user && p == f.pass
	case "bearer":
		return r.Header.Get("Authorization") == "Bearer tok-"+f.user
	}
	return true
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	n := f.hits[r.URL.Path]
	fault := f.fault
	f.mu.Unlock()
	if fault != nil && fault(w, r, n) {
		return
	}
	if r.URL.Path == "/token" {
		u, p, ok := r.BasicAuth()
		if !ok || u != f.user || p != f.pass {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}`, http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"token": "tok-" + u})
		return
	}
	if r.URL.Path == "/v1/search" {
		q := r.URL.Query().Get("q")
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		var res []SearchResult
		for i := 0; i < 3; i++ {
			res = append(res, SearchResult{Name: fmt.Sprintf("%s/app%d", q, i), Description: strings.Repeat("d", 50*i), StarCount: i * 10, IsOfficial: i == 2})
		}
		if n > 0 && n < len(res) {
			res = res[:n]
		}
		json.NewEncoder(w).Encode(map[string]any{"num_results": len(res), "query": q, "results": res})
		return
	}
	if !f.authorized(r) {
		switch f.auth {
		case "basic":
			w.Header().Set("WWW-Authenticate", `Basic realm="fake"`)
		case "bearer":
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="fake"`, f.srv.URL))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		return
	}
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v2/")
	switch {
	case strings.Contains(rest, "/manifests/"):
		i := strings.LastIndex(rest, "/manifests/")
		key := rest[:i] + ":" + rest[i+len("/manifests/"):]
		f.mu.Lock()
		d, ok := f.manifests[key]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
			return
		}
		w.Header().Set("Content-Type", d.mt)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(d.raw).String())
		w.Write(d.raw)
	case strings.Contains(rest, "/blobs/"):
		i := strings.LastIndex(rest, "/blobs/")
		dg := digest.Digest(rest[i+len("/blobs/"):])
		f.mu.Lock()
		b, ok := f.blobs[dg]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	case strings.HasSuffix(rest, "/tags/list"):
		repo := strings.TrimSuffix(rest, "/tags/list")
		var tags []string
		f.mu.Lock()
		for k := range f.manifests {
			if r, t, _ := strings.Cut(k, ":"); r == repo && !strings.HasPrefix(t, "sha256") {
				tags = append(tags, t)
			}
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": tags})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// testImage is an image made for a test: its documents and blobs.
type testImage struct {
	manifest fakeDoc
	config   []byte
	layers   [][]byte
	digest   digest.Digest
}

// makeLayer is a layer tar of a few files, compressed with c.
func makeLayer(t *testing.T, c layer.Compression, name, data string) []byte {
	t.Helper()
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "etc/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
	tw.Write([]byte(data))
	tw.Close()
	var out bytes.Buffer
	w, err := layer.CompressStream(&out, c)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain.Bytes())
	w.Close()
	return out.Bytes()
}

func diffIDOf(t *testing.T, blob []byte) digest.Digest {
	t.Helper()
	r, _, err := layer.DecompressStream(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	d := digest.NewDigester()
	io.Copy(d, r)
	return d.Digest()
}

// buildImage makes an image of the layers in manifest format mt (Docker
// schema2 or OCI).
func buildImage(t *testing.T, mt, arch string, layers ...[]byte) testImage {
	t.Helper()
	var diffIDs []digest.Digest
	for _, l := range layers {
		diffIDs = append(diffIDs, diffIDOf(t, l))
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": arch, "os": "linux", "config": map[string]any{"Cmd": []string{"/bin/sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cfgMT, layerMT := image.MediaTypeImageConfig, ""
	if mt == MediaTypeDockerManifest {
		cfgMT = MediaTypeDockerConfig
	}
	m := image.Manifest{Versioned: image.Versioned{SchemaVersion: 2}, MediaType: mt,
		Config: image.Descriptor{MediaType: cfgMT, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}}
	for _, l := range layers {
		layerMT = image.MediaTypeImageLayer
		switch {
		case bytes.HasPrefix(l, []byte{0x1f, 0x8b}):
			layerMT = image.MediaTypeImageLayerGzip
			if mt == MediaTypeDockerManifest {
				layerMT = MediaTypeDockerLayer
			}
		case bytes.HasPrefix(l, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			layerMT = image.MediaTypeImageLayerZstd
		}
		m.Layers = append(m.Layers, image.Descriptor{MediaType: layerMT, Digest: digest.FromBytes(l), Size: int64(len(l))})
	}
	raw, _ := json.Marshal(m)
	return testImage{manifest: fakeDoc{raw, mt}, config: cfg, layers: layers, digest: digest.FromBytes(raw)}
}

// add publishes img as repo:tag (and by digest).
func (f *fakeRegistry) add(repo, tag string, img testImage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blobs[digest.FromBytes(img.config)] = img.config
	for _, l := range img.layers {
		f.blobs[digest.FromBytes(l)] = l
	}
	f.manifests[repo+":"+img.digest.String()] = img.manifest
	if tag != "" {
		f.manifests[repo+":"+tag] = img.manifest
	}
}

// addIndex publishes an index of imgs as repo:tag.
func (f *fakeRegistry) addIndex(repo, tag string, mt string, imgs map[string]testImage) digest.Digest {
	idx := image.Index{Versioned: image.Versioned{SchemaVersion: 2}, MediaType: mt}
	for arch, img := range imgs {
		f.add(repo, "", img)
		idx.Manifests = append(idx.Manifests, image.Descriptor{MediaType: img.manifest.mt, Digest: img.digest, Size: int64(len(img.manifest.raw)),
			Platform: &image.Platform{OS: "linux", Architecture: arch}})
	}
	raw, _ := json.Marshal(idx)
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digest.FromBytes(raw)
	f.manifests[repo+":"+tag] = fakeDoc{raw, mt}
	f.manifests[repo+":"+d.String()] = fakeDoc{raw, mt}
	return d
}

// newStore is an empty image store in a temporary directory.
func newStore(t *testing.T) *image.Store {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	ctx := context.Background()
	meta, err := metadata.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := content.New(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return image.NewStore(meta, cs, snaps, nil)
}

// testClient is a client with quick retries and no certificates.
func testClient(t *testing.T, opts Options, kc Keychain) *Client {
	t.Helper()
	opts.CertsDirs = []string{}
	c := New(opts, kc)
	c.SetRetry(3, time.Millisecond)
	return c
}

func mustRef(t *testing.T, s string) image.Reference {
	t.Helper()
	r, err := image.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// assertEmpty checks that a failed pull left no image and no blob.
func assertEmpty(t *testing.T, st *image.Store) {
	t.Helper()
	imgs, err := st.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 0 {
		t.Errorf("a failed pull left %d images", len(imgs))
	}
	n := 0
	st.Content().Walk(func(digest.Digest, int64) error { n++; return nil })
	if n != 0 {
		t.Errorf("a failed pull left %d blobs", n)
	}
}

// keychain is a fixed credential.
type keychain map[string]AuthConfig

func (k keychain) Get(_ context.Context, host string) (AuthConfig, error) { return k[host], nil }
