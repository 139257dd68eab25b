package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/layer"
)

// mountingRegistry is go-containerregistry's in-process registry with
// cross-repository mounts (its blobs are shared by all repositories) and
// a log of requests.
type mountingRegistry struct {
	inner http.Handler
	mu    sync.Mutex
	log   []string
	has   map[string]bool // "repo@digest": blobs each repository got
	fail  func(r *http.Request) bool
}

func (m *mountingRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.log = append(m.log, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	fail := m.fail
	m.mu.Unlock()
	if fail != nil && fail(r) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	repo, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/")
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && q.Get("mount") != "":
		m.mu.Lock()
		ok := m.has[q.Get("from")+"@"+q.Get("mount")]
		if ok {
			m.has[repo+"@"+q.Get("mount")] = true
		}
		m.mu.Unlock()
		if ok {
			w.Header().Set("Location", strings.TrimSuffix(r.URL.Path, "uploads/")+q.Get("mount"))
			w.WriteHeader(http.StatusCreated)
			return
		}
	case r.Method == http.MethodPut && q.Get("digest") != "":
		m.mu.Lock()
		m.has[repo+"@"+q.Get("digest")] = true
		m.mu.Unlock()
	case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/"):
		_, d, _ := strings.Cut(r.URL.Path, "/blobs/")
		m.mu.Lock()
		ok := m.has[repo+"@"+d]
		m.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
	}
	m.inner.ServeHTTP(w, r)
}

func (m *mountingRegistry) requests(prefix string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, l := range m.log {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// TestPushPull: an image pushed sends its stored bytes (same manifest
// digest), skips blobs the registry has, mounts from a repository it is
// known from, and pulls back identical into another store.
func TestPushPull(t *testing.T) {
	ctx := context.Background()
	reg := &mountingRegistry{has: map[string]bool{}, inner: ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	a := newStore(t)
	src := makeLayer(t, layer.Zstd, "pushed", strings.Repeat("pushed content\n", 1000))
	img, err := a.Import(ctx, bytes.NewReader(src), image.ImportOptions{Reference: host + "/team/app:1", Source: "-"})
	if err != nil {
		t.Fatal(err)
	}
	stored, _, err := a.PushManifest(&img.Record)
	if err != nil {
		t.Fatal(err)
	}
	c := testClient(t, Options{}, nil)
	var lines []string
	progress := func(p Progress) {
		if p.Aux == nil && p.Current == 0 {
			lines = append(lines, p.ID+" "+p.Status)
		}
	}
	res, err := c.Push(ctx, a, mustRef(t, host+"/team/app:1"), PushOptions{Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Digest != digest.FromBytes(stored).String() || res[0].Size != len(stored) {
		t.Errorf("pushed %+v, the stored manifest is %s", res[0], digest.FromBytes(stored))
	}
	out := strings.Join(lines, "\n")
	for _, w := range []string{"The push refers to repository [" + host + "/team/app]", "Preparing", "Pushed", "1: digest: " + res[0].Digest + " size: "} {
		if !strings.Contains(out, w) {
			t.Errorf("progress lacks %q:\n%s", w, out)
		}
	}
	// The registry serves exactly the stored manifest.
	resp, err := http.Get(srv.URL + "/v2/team/app/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(served, stored) {
		t.Errorf("registry serves %s, stored %s", served, stored)
	}

	// Again: every blob exists.
	lines = nil
	if _, err := c.Push(ctx, a, mustRef(t, host+"/team/app:1"), PushOptions{Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if out := strings.Join(lines, "\n"); !strings.Contains(out, "Layer already exists") || strings.Contains(out, "Pushed") {
		t.Errorf("second push:\n%s", out)
	}

	// Another repository of the same registry: mounted, not sent.
	if _, err := a.Tag(ctx, host+"/team/app:1", host+"/team/other:2"); err != nil {
		t.Fatal(err)
	}
	lines = nil
	puts := reg.requests("PUT /v2/team/other/blobs")
	if _, err := c.Push(ctx, a, mustRef(t, host+"/team/other:2"), PushOptions{Progress: progress}); err != nil {
		t.Fatal(err)
	}
	if out := strings.Join(lines, "\n"); !strings.Contains(out, "Mounted from team/app") {
		t.Errorf("push to another repository:\n%s", out)
	}
	if reg.requests("PUT /v2/team/other/blobs") != puts+1 { // the config only
		t.Errorf("layer uploaded instead of mounted: %v", reg.log)
	}

	// Pulled into another store: the same image, manifest and blobs.
	b := newStore(t)
	pres, err := c.Pull(ctx, b, mustRef(t, host+"/team/app:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Resolve(ctx, host+"/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != img.ID || got.ManifestDigest != digest.FromBytes(stored) || pres[0].Digest.String() != res[0].Digest {
		t.Errorf("pulled %s (manifest %s), pushed %s (manifest %s)", got.ID, got.ManifestDigest, img.ID, res[0].Digest)
	}
	raw, err := b.Content().ReadAll(got.Layers[0].Blob)
	if err != nil || !bytes.Equal(raw, src) {
		t.Errorf("layer blob changed on the way: %v", err)
	}
	// The push recorded where the image now is.
	after, _ := a.Resolve(ctx, host+"/team/app:1")
	if want := host + "/team/app@" + res[0].Digest; !contains(after.RepoDigests, want) {
		t.Errorf("repo digests %v lack %s", after.RepoDigests, want)
	}

	// --all-tags pushes every tag of the repository.
	if _, err := a.Tag(ctx, host+"/team/app:1", host+"/team/app:3"); err != nil {
		t.Fatal(err)
	}
	repoOnly, _ := image.ParseNormalized(host + "/team/app")
	all, err := c.Push(ctx, a, repoOnly, PushOptions{AllTags: true})
	if err != nil || len(all) != 2 || all[0].Tag != "1" || all[1].Tag != "3" {
		t.Errorf("--all-tags pushed %+v, %v", all, err)
	}
	tags, err := c.Tags(ctx, repoOnly)
	if err != nil || strings.Join(tags, ",") != "1,3" {
		t.Errorf("tags %v, %v", tags, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPushMissing: docker's words for a tag that is not stored.
func TestPushMissing(t *testing.T) {
	st := newStore(t)
	_, err := testClient(t, Options{}, nil).Push(context.Background(), st, mustRef(t, "127.0.0.1:1/team/none:1"), PushOptions{})
	if err == nil || err.Error() != "An image does not exist locally with the tag: 127.0.0.1:1/team/none" {
		t.Fatalf("got %v", err)
	}
}

// TestPushRetries: a 503 on an upload is retried with a new session; a
// registry that keeps failing gives a one-line error naming it.
func TestPushRetries(t *testing.T) {
	ctx := context.Background()
	reg := &mountingRegistry{has: map[string]bool{}, inner: ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	st := newStore(t)
	if _, err := st.Import(ctx, bytes.NewReader(makeLayer(t, layer.Gzip, "x", "retry me")), image.ImportOptions{Reference: host + "/team/app:1", Source: "-"}); err != nil {
		t.Fatal(err)
	}
	puts := 0
	reg.fail = func(r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			puts++
			return puts == 1
		}
		return false
	}
	if _, err := testClient(t, Options{}, nil).Push(ctx, st, mustRef(t, host+"/team/app:1"), PushOptions{}); err != nil {
		t.Fatalf("push with one 503: %v", err)
	}
	reg.fail = func(r *http.Request) bool { return r.Method == http.MethodPut }
	if _, err := st.Tag(ctx, host+"/team/app:1", host+"/team/new:1"); err != nil {
		t.Fatal(err)
	}
	_, err := testClient(t, Options{}, nil).Push(ctx, st, mustRef(t, host+"/team/new:1"), PushOptions{})
	if !errors.Is(err, errdefs.ErrUnavailable) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), host+"/team/new") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("push to a failing registry: %v", err)
	}
}

// TestPushNotLoggedIn: a push to a Basic-auth registry without
// credentials fails with docker's words; a token registry's refusal keeps
// docker's "denied" line.
func TestPushNotLoggedIn(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ auth, want string }{
		{"basic", "no basic auth credentials"},
		{"bearer", "denied: requested access to the resource is denied"},
	} {
		t.Run(tc.auth, func(t *testing.T) {
			f := newFake(t)
			f.auth, f.user, f.pass = tc.auth, "alice", "s3cret"
			st := newStore(t)
			ref := f.host() + "/team/app:1"
			if _, err := st.Import(ctx, bytes.NewReader(makeLayer(t, layer.Gzip, "x", "push me")), image.ImportOptions{Reference: ref, Source: "-"}); err != nil {
				t.Fatal(err)
			}
			_, err := testClient(t, Options{}, nil).Push(ctx, st, mustRef(t, ref), PushOptions{})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("push without credentials: %v, want %q", err, tc.want)
			}
		})
	}
}
