package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/layer"
)

// TestPullFormats pulls Docker schema2 and OCI manifests and an index,
// with gzip, zstd and uncompressed layers: the image keeps the registry's
// manifest bytes and digest and the blobs as they came, and its files are
// extracted.
func TestPullFormats(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	gz := makeLayer(t, layer.Gzip, "a", "gzip layer\n")
	zs := makeLayer(t, layer.Zstd, "b", "zstd layer\n")
	pl := makeLayer(t, layer.Uncompressed, "c", "plain layer\n")
	docker := buildImage(t, MediaTypeDockerManifest, "amd64", gz)
	oci := buildImage(t, image.MediaTypeImageManifest, "amd64", gz, zs, pl)
	f.add("team/docker", "1", docker)
	f.add("team/oci", "1", oci)
	amd := buildImage(t, image.MediaTypeImageManifest, "amd64", zs)
	arm := buildImage(t, image.MediaTypeImageManifest, "arm64", pl)
	idx := f.addIndex("team/multi", "1", image.MediaTypeImageIndex, map[string]testImage{"amd64": amd, "arm64": arm})

	tests := []struct {
		name, ref, platform string
		want                testImage
		repoDigest          digest.Digest
		files               []string
	}{
		{"docker schema2", "team/docker:1", "linux/amd64", docker, docker.digest, []string{"etc/a"}},
		{"oci gzip zstd plain", "team/oci:1", "linux/amd64", oci, oci.digest, []string{"etc/a", "etc/b", "etc/c"}},
		{"index amd64", "team/multi:1", "linux/amd64", amd, idx, []string{"etc/b"}},
		{"index arm64", "team/multi:1", "linux/arm64", arm, idx, []string{"etc/c"}},
		{"by digest", "team/oci@" + oci.digest.String(), "linux/amd64", oci, oci.digest, []string{"etc/c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			c := testClient(t, Options{}, nil)
			ref := mustRef(t, f.host()+"/"+tc.ref)
			var lines []string
			res, err := c.Pull(ctx, st, ref, PullOptions{Platform: tc.platform, Progress: func(p Progress) {
				if p.Current == 0 {
					lines = append(lines, p.ID+" "+p.Status)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Digest != tc.repoDigest {
				t.Errorf("digest %s, want %s", res[0].Digest, tc.repoDigest)
			}
			img, err := st.Resolve(ctx, ref.String())
			if err != nil {
				t.Fatal(err)
			}
			if img.ManifestDigest != tc.want.digest {
				t.Errorf("manifest %s, want %s", img.ManifestDigest, tc.want.digest)
			}
			if want := ref.Name() + "@" + tc.repoDigest.String(); len(img.RepoDigests) != 1 || img.RepoDigests[0] != want {
				t.Errorf("repo digests %v, want %s", img.RepoDigests, want)
			}
			if img.ID != digest.FromBytes(tc.want.config) {
				t.Errorf("ID %s", img.ID)
			}
			for i, l := range tc.want.layers {
				raw, err := st.Content().ReadAll(img.Layers[i].Blob)
				if err != nil || string(raw) != string(l) {
					t.Errorf("layer %d not stored as it came: %v", i, err)
				}
			}
			top := img.Layers[len(img.Layers)-1].ChainID
			for _, name := range tc.files[len(tc.files)-1:] {
				if _, err := os.Stat(filepath.Join(st.Snapshots().Dir(top), name)); err != nil {
					// files of lower layers are in their own snapshots
					t.Errorf("%s not extracted: %v", name, err)
				}
			}
			got := strings.Join(lines, "\n")
			for _, w := range []string{"Pulling from team/", "Pull complete", "Digest: " + tc.repoDigest.String(), "Status: Downloaded newer image for " + ref.Familiar()} {
				if !strings.Contains(got, w) {
					t.Errorf("progress lacks %q:\n%s", w, got)
				}
			}
			// Again: nothing downloaded, "up to date".
			lines = nil
			before := f.count("/v2/team/oci/blobs/" + digest.FromBytes(gz).String())
			if _, err := c.Pull(ctx, st, ref, PullOptions{Platform: tc.platform, Progress: func(p Progress) { lines = append(lines, p.ID+" "+p.Status) }}); err != nil {
				t.Fatal(err)
			}
			if f.count("/v2/team/oci/blobs/"+digest.FromBytes(gz).String()) != before {
				t.Error("a stored layer was downloaded again")
			}
			if got := strings.Join(lines, "\n"); !strings.Contains(got, "Already exists") || (ref.Tag != "" && !strings.Contains(got, "Image is up to date")) {
				t.Errorf("second pull:\n%s", got)
			}
		})
	}
}

// TestPullPlatformMismatch: an index without the platform asked for.
func TestPullPlatformMismatch(t *testing.T) {
	f := newFake(t)
	amd := buildImage(t, image.MediaTypeImageManifest, "amd64", makeLayer(t, layer.Gzip, "a", "x"))
	f.addIndex("team/multi", "1", MediaTypeDockerManifestList, map[string]testImage{"amd64": amd})
	st := newStore(t)
	_, err := testClient(t, Options{}, nil).Pull(context.Background(), st, mustRef(t, f.host()+"/team/multi:1"), PullOptions{Platform: "linux/s390x"})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "no matching manifest for linux/s390x") {
		t.Fatalf("got %v", err)
	}
	assertEmpty(t, st)
}

// TestPullBadInput: every bad answer of a registry gives a one-line error
// naming registry, repository (and digest), stores nothing unverified and
// records no image.
func TestPullBadInput(t *testing.T) {
	ctx := context.Background()
	gz := makeLayer(t, layer.Gzip, "a", strings.Repeat("some content\n", 4000))
	img := buildImage(t, image.MediaTypeImageManifest, "amd64", gz)
	layerPath := "/v2/team/app/blobs/" + digest.FromBytes(gz).String()
	manifestPath := "/v2/team/app/manifests/1"
	tests := []struct {
		name  string
		fault func(w http.ResponseWriter, r *http.Request, n int) bool
		class error
		want  []string
	}{
		{"blob digest mismatch", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path != layerPath {
				return false
			}
			bad := append([]byte{}, gz...)
			bad[len(bad)/2] ^= 0xff
			w.Write(bad)
			return true
		}, errdefs.ErrInvalidArgument, []string{"team/app", digest.FromBytes(gz).String()}},
		{"truncated stream", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path != layerPath {
				return false
			}
			// Every answer ends at the same place: resuming cannot help.
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			if r.Header.Get("Range") == "" {
				w.Write(gz[:len(gz)/2])
			}
			return true
		}, errdefs.ErrUnavailable, []string{"truncated", "team/app", digest.FromBytes(gz).String()}},
		{"manifest not JSON", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path != manifestPath {
				return false
			}
			w.Header().Set("Content-Type", image.MediaTypeImageManifest)
			w.Write([]byte("<html>not a manifest</html>"))
			return true
		}, errdefs.ErrInvalidArgument, []string{"not a JSON document", "team/app:1"}},
		{"manifest too large", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path != manifestPath {
				return false
			}
			w.Header().Set("Content-Type", image.MediaTypeImageManifest)
			w.Write([]byte(`{"schemaVersion":2,"x":"` + strings.Repeat("a", 5<<20) + `"}`))
			return true
		}, errdefs.ErrInvalidArgument, []string{"more than the 4 MiB", "team/app:1"}},
		{"unknown media type", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path != manifestPath {
				return false
			}
			w.Header().Set("Content-Type", "application/vnd.example.thing+json")
			w.Write([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json"}`))
			return true
		}, errdefs.ErrInvalidArgument, []string{"unknown media type", "team/app:1"}},
		{"redirect loop", func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path != layerPath {
				return false
			}
			http.Redirect(w, r, layerPath, http.StatusTemporaryRedirect)
			return true
		}, errdefs.ErrInvalidArgument, []string{"redirect loop", "team/app", digest.FromBytes(gz).String()}},
		{"401", statusFault(manifestPath, http.StatusUnauthorized), errdefs.ErrNotFound, []string{"pull access denied", "team/app"}},
		{"403", statusFault(manifestPath, http.StatusForbidden), errdefs.ErrNotFound, []string{"pull access denied", "team/app"}},
		{"404", statusFault(manifestPath, http.StatusNotFound), errdefs.ErrNotFound, []string{"manifest for", "team/app:1", "not found"}},
		{"429 for good", statusFault(layerPath, http.StatusTooManyRequests), errdefs.ErrUnavailable, []string{"team/app", digest.FromBytes(gz).String(), "429"}},
		{"503 for good", statusFault(layerPath, http.StatusServiceUnavailable), errdefs.ErrUnavailable, []string{"team/app", digest.FromBytes(gz).String(), "503"}},
		{"500 for good", statusFault(layerPath, http.StatusInternalServerError), errdefs.ErrUnavailable, []string{"team/app", digest.FromBytes(gz).String(), "500"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.add("team/app", "1", img)
			f.fault = tc.fault
			st := newStore(t)
			_, err := testClient(t, Options{}, nil).Pull(ctx, st, mustRef(t, f.host()+"/team/app:1"), PullOptions{})
			if err == nil {
				t.Fatal("pull succeeded")
			}
			if !errors.Is(err, tc.class) {
				t.Errorf("error class: %v", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("not one line: %q", msg)
			}
			for _, w := range append(tc.want, f.host()) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			assertEmpty(t, st)
		})
	}
}

func statusFault(path string, code int) func(w http.ResponseWriter, r *http.Request, n int) bool {
	return func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path != path {
			return false
		}
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(code)
		w.Write([]byte(`{"errors":[{"code":"DENIED","message":"go away"}]}`))
		return true
	}
}

// TestPullRetriesAndResumes: a 503, a 429 with Retry-After and a
// connection reset mid-layer are retried; the broken download resumes
// where it stopped (a Range request) and the image is whole.
func TestPullRetriesAndResumes(t *testing.T) {
	ctx := context.Background()
	gz := makeLayer(t, layer.Gzip, "a", strings.Repeat("resumable content\n", 20000))
	img := buildImage(t, image.MediaTypeImageManifest, "amd64", gz)
	layerPath := "/v2/team/app/blobs/" + digest.FromBytes(gz).String()
	f := newFake(t)
	f.add("team/app", "1", img)
	var ranges []string
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		switch {
		case r.URL.Path == "/v2/team/app/manifests/1" && n == 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		case r.URL.Path == "/v2/team/app/manifests/1" && n == 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		case r.URL.Path == layerPath:
			ranges = append(ranges, r.Header.Get("Range"))
			if n == 1 {
				// Half the layer, then the connection breaks.
				w.Header().Set("Content-Length", itoa(len(gz)))
				w.WriteHeader(http.StatusOK)
				w.Write(gz[:len(gz)/2])
				w.(http.Flusher).Flush()
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
				return true
			}
		}
		return false
	}
	st := newStore(t)
	if _, err := testClient(t, Options{}, nil).Pull(ctx, st, mustRef(t, f.host()+"/team/app:1"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes="+itoa(len(gz)/2)+"-" {
		t.Errorf("layer requests with ranges %q, want a resume from %d", ranges, len(gz)/2)
	}
	if _, err := st.Resolve(ctx, f.host()+"/team/app:1"); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestPullResumesAfterFailure: the layers a failed pull completed are
// kept (GC included) and the next pull downloads only the rest.
func TestPullResumesAfterFailure(t *testing.T) {
	ctx := context.Background()
	good := makeLayer(t, layer.Gzip, "a", strings.Repeat("kept\n", 1000))
	bad := makeLayer(t, layer.Gzip, "b", strings.Repeat("failed\n", 1000))
	img := buildImage(t, image.MediaTypeImageManifest, "amd64", good, bad)
	f := newFake(t)
	f.add("team/app", "1", img)
	badPath := "/v2/team/app/blobs/" + digest.FromBytes(bad).String()
	goodPath := "/v2/team/app/blobs/" + digest.FromBytes(good).String()
	f.fault = statusFault(badPath, http.StatusInternalServerError)
	st := newStore(t)
	c := testClient(t, Options{MaxConcurrentDownloads: 1}, nil)
	ref := mustRef(t, f.host()+"/team/app:1")
	if _, err := c.Pull(ctx, st, ref, PullOptions{}); err == nil {
		t.Fatal("pull succeeded")
	}
	if imgs, _ := st.List(ctx); len(imgs) != 0 {
		t.Fatalf("a failed pull recorded %d images", len(imgs))
	}
	if err := st.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if !st.Content().Exists(digest.FromBytes(good)) {
		t.Fatal("the completed layer was not kept")
	}
	f.fault = nil
	var lines []string
	if _, err := c.Pull(ctx, st, ref, PullOptions{Progress: func(p Progress) { lines = append(lines, p.ID+" "+p.Status) }}); err != nil {
		t.Fatal(err)
	}
	if n := f.count(goodPath); n != 1 {
		t.Errorf("the kept layer was downloaded %d times", n)
	}
	if !strings.Contains(strings.Join(lines, "\n"), ShortID(digest.FromBytes(good))+" Already exists") {
		t.Errorf("progress:\n%s", strings.Join(lines, "\n"))
	}
}

// TestPullUnderCollection: a collection during a pull takes nothing the
// pull has stored (its lease protects it).
func TestPullUnderCollection(t *testing.T) {
	ctx := context.Background()
	first := makeLayer(t, layer.Gzip, "a", strings.Repeat("first\n", 1000))
	second := makeLayer(t, layer.Gzip, "b", strings.Repeat("second\n", 1000))
	img := buildImage(t, image.MediaTypeImageManifest, "amd64", first, second)
	f := newFake(t)
	f.add("team/app", "1", img)
	st := newStore(t)
	secondPath := "/v2/team/app/blobs/" + digest.FromBytes(second).String()
	f.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Path == secondPath {
			// The first layer is stored by now: collect meanwhile.
			if err := st.Collect(ctx); err != nil {
				t.Error(err)
			}
		}
		return false
	}
	c := testClient(t, Options{MaxConcurrentDownloads: 1}, nil)
	if _, err := c.Pull(ctx, st, mustRef(t, f.host()+"/team/app:1"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Resolve(ctx, f.host()+"/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range got.Layers {
		if !st.Content().Exists(l.Blob) || !st.Snapshots().Exists(l.ChainID) {
			t.Errorf("layer %s lost to the collection", l.Blob)
		}
	}
}

// TestPullForeignLayer: a foreign layer the registry does not have is
// fetched from its URL, as dockerd does, and verified the same way.
func TestPullForeignLayer(t *testing.T) {
	ctx := context.Background()
	foreign := makeLayer(t, layer.Gzip, "f", "foreign\n")
	img := buildImage(t, MediaTypeDockerManifest, "amd64", foreign)
	var m image.Manifest
	json.Unmarshal(img.manifest.raw, &m)
	elsewhere := newFake(t)
	elsewhere.blobs[digest.FromBytes(foreign)] = foreign
	m.Layers[0].MediaType = MediaTypeDockerForeignLayer
	m.Layers[0].URLs = []string{elsewhere.srv.URL + "/v2/x/blobs/" + digest.FromBytes(foreign).String()}
	raw, _ := json.Marshal(m)
	img.manifest.raw, img.digest = raw, digest.FromBytes(raw)
	f := newFake(t)
	f.add("team/win", "1", img)
	delete(f.blobs, digest.FromBytes(foreign))
	st := newStore(t)
	if _, err := testClient(t, Options{}, nil).Pull(ctx, st, mustRef(t, f.host()+"/team/win:1"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Resolve(ctx, f.host()+"/team/win:1")
	if err != nil || got.Layers[0].MediaType != MediaTypeDockerForeignLayer || got.ManifestDigest != img.digest {
		t.Fatalf("%+v %v", got, err)
	}
	if elsewhere.count("/v2/x/blobs/"+digest.FromBytes(foreign).String()) != 1 {
		t.Error("the layer's URL was not used")
	}
}

// TestBlobReaderOnEOF: a download gives its slot back once the whole
// blob is read (onEOF, once), never for a blob cut short.
func TestBlobReaderOnEOF(t *testing.T) {
	ctx := context.Background()
	gz := makeLayer(t, layer.Gzip, "a", strings.Repeat("slot\n", 5000))
	img := buildImage(t, image.MediaTypeImageManifest, "amd64", gz)
	d := digest.FromBytes(gz)
	for _, tc := range []struct {
		name  string
		size  int64 // what the manifest states
		calls int
	}{
		{"whole", int64(len(gz)), 1},
		{"cut short", int64(len(gz)) + 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.add("team/app", "1", img)
			c := testClient(t, Options{}, nil)
			c.SetRetry(1, time.Millisecond)
			ref := mustRef(t, f.host()+"/team/app:1")
			r, err := c.open(ctx, c.endpoints(ref.Domain)[0], ref.Path, []string{"pull"})
			if err != nil {
				t.Fatal(err)
			}
			br, err := r.openBlob(ctx, d, tc.size, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer br.Close()
			calls := 0
			br.onEOF = func() { calls++ }
			buf := make([]byte, 1000)
			for {
				if _, err := br.Read(buf); err != nil {
					break
				}
			}
			br.Read(buf) // reads after the end do not call it again
			if calls != tc.calls {
				t.Errorf("onEOF called %d times, want %d", calls, tc.calls)
			}
		})
	}
}
