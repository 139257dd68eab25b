package server

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// age makes everything under the root, and every digest the server
// touched, two hours old: past any grace window the tests use.
func age(t *testing.T, s *Server) {
	t.Helper()
	old := time.Now().Add(-2 * time.Hour)
	filepath.WalkDir(s.Root(), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	s.recentMu.Lock()
	for d := range s.recent {
		s.recent[d] = old
	}
	s.recentMu.Unlock()
}

func gc(t *testing.T, s *Server) GCStats {
	t.Helper()
	st, err := s.GC(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func blobExists(s *Server, d string) bool {
	pd, err := parseDigest(d)
	return err == nil && s.store.exists(s.store.blobPath(pd))
}

// TestGCSparesAPushInProgress: a push uploads its blobs, then its
// manifest. A collection between the two (or during an upload) must not
// take the blobs: the manifest would then name missing blobs.
func TestGCSparesAPushInProgress(t *testing.T) {
	s := newTestServer(t, Config{}) // the default grace window
	m := image(t, s, "team/app", "layer a", "layer b")
	// A second layer still uploading.
	w := do(t, s, req{method: "POST", target: "/v2/team/app/blobs/uploads/"})
	loc := w.Header().Get("Location")
	do(t, s, req{method: "PATCH", target: loc, body: []byte("layer "), header: map[string]string{"Content-Range": "0-5"}})

	if st := gc(t, s); st.BlobsRemoved != 0 || st.LinksRemoved != 0 || st.Uploads != 0 {
		t.Fatalf("collected during a push: %+v", st)
	}
	if w := do(t, s, req{method: "PUT", target: loc + "?digest=" + sha([]byte("layer c")), body: []byte("c")}); w.Code != 201 {
		t.Fatalf("finish upload after GC: %d %s", w.Code, w.Body.String())
	}
	if w := putManifest(t, s, "team/app", "v1", m, mtOCIManifest); w.Code != 201 {
		t.Fatalf("manifest after GC: %d %s", w.Code, w.Body.String())
	}
	// Even past the grace window a blob a client just HEADed is spared:
	// the client is about to name it in a manifest.
	s.cfg.GCGrace = time.Minute
	age(t, s)
	if w := do(t, s, req{method: "HEAD", target: "/v2/team/app/blobs/" + sha([]byte("layer c"))}); w.Code != 200 {
		t.Fatal(w.Code)
	}
	if st := gc(t, s); st.BlobsRemoved != 0 {
		t.Fatalf("collected a blob just HEADed: %+v", st)
	}
	age(t, s)
	if st := gc(t, s); st.BlobsRemoved != 1 || st.LinksRemoved != 1 || blobExists(s, sha([]byte("layer c"))) {
		t.Fatalf("the unreferenced blob outlived its grace: %+v", st)
	}
	stale := strings.Replace(string(m), sha([]byte("layer a")), sha([]byte("layer c")), 1)
	expect(t, putManifest(t, s, "team/app", "v2", []byte(stale), mtOCIManifest), 400, codeManifestBlobUnknown)
}

func TestGCCollects(t *testing.T) {
	s := newTestServer(t, Config{GCGrace: time.Minute})
	keep := image(t, s, "a", "shared", "kept")
	putManifest(t, s, "a", "v1", keep, mtOCIManifest)
	gone := image(t, s, "b", "shared", "dropped")
	putManifest(t, s, "b", "v1", gone, mtOCIManifest)
	orphan := pushBlob(t, s, "c", []byte("orphan"))
	// An artifact referring to the kept image keeps itself and its blobs.
	empty := pushBlob(t, s, "a", []byte("{}"))
	art := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"artifactType":"x/sig","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},"layers":[],"subject":{"mediaType":%q,"digest":%q,"size":%d}}`,
		mtOCIManifest, empty, mtOCIManifest, sha(keep), len(keep))
	putManifest(t, s, "a", sha([]byte(art)), []byte(art), mtOCIManifest)
	do(t, s, req{method: "DELETE", target: "/v2/b/manifests/" + sha(gone)})
	// An abandoned upload.
	w := do(t, s, req{method: "POST", target: "/v2/c/blobs/uploads/"})
	abandoned := w.Header().Get("Docker-Upload-UUID")
	s.sessMu.Lock()
	delete(s.sessions, abandoned) // as after a restart
	s.sessMu.Unlock()
	age(t, s)
	old := time.Now().Add(-2 * uploadTTL)
	s.store.r.Chtimes(s.dataPath(abandoned), old, old)
	s.store.r.Chtimes(s.store.uploadDir(abandoned), old, old)
	st := gc(t, s)
	for _, d := range []string{orphan, sha([]byte("dropped")), sha(gone)} {
		if blobExists(s, d) {
			t.Errorf("%s survived", d)
		}
	}
	for _, d := range []string{sha(keep), sha([]byte("shared")), sha([]byte("kept")), sha([]byte(art)), empty} {
		if !blobExists(s, d) {
			t.Errorf("%s collected", d)
		}
	}
	if st.Uploads != 1 || s.store.exists(s.store.uploadDir(abandoned)) {
		t.Errorf("abandoned upload: %+v", st)
	}
	if w := do(t, s, req{method: "GET", target: "/v2/a/blobs/" + sha([]byte("kept"))}); w.Code != 200 {
		t.Fatalf("kept blob: %d", w.Code)
	}
	expect(t, do(t, s, req{method: "GET", target: "/v2/b/blobs/" + sha([]byte("shared"))}), 404, codeBlobUnknown)
	if idx := do(t, s, req{method: "GET", target: "/v2/a/referrers/" + sha(keep)}); !strings.Contains(idx.Body.String(), sha([]byte(art))) {
		t.Fatalf("referrer lost: %s", idx.Body.String())
	}
	if st := gc(t, s); st.BlobsRemoved+st.LinksRemoved != 0 {
		t.Fatalf("second run removed more: %+v", st)
	}
}

// TestGCWhilePushing collects old garbage while clients push: every push
// completes and is whole afterwards (run it with -race too).
func TestGCWhilePushing(t *testing.T) {
	s := newTestServer(t, Config{GCGrace: time.Minute})
	var orphans []string
	for i := range 30 {
		orphans = append(orphans, pushBlob(t, s, "junk", fmt.Appendf(nil, "orphan %d", i)))
	}
	age(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	var gcWG sync.WaitGroup
	gcWG.Add(1)
	go func() {
		defer gcWG.Done()
		for ctx.Err() == nil {
			s.GC(ctx)
		}
	}()
	var wg sync.WaitGroup
	manifests := make([][]byte, 8)
	for i := range manifests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("p/%d", i)
			manifests[i] = image(t, s, repo, fmt.Sprintf("layer %d", i), "common layer")
			if w := putManifest(t, s, repo, "latest", manifests[i], mtOCIManifest); w.Code != 201 {
				t.Errorf("%s: %d %s", repo, w.Code, w.Body.String())
			}
		}()
	}
	wg.Wait()
	cancel()
	gcWG.Wait()
	gc(t, s)
	for i, m := range manifests {
		repo := fmt.Sprintf("p/%d", i)
		for _, d := range []string{sha(m), sha([]byte("common layer")), sha(fmt.Appendf(nil, "layer %d", i))} {
			if !blobExists(s, d) {
				t.Errorf("%s: %s collected", repo, d)
			}
		}
	}
	for _, d := range orphans {
		if blobExists(s, d) {
			t.Errorf("orphan %s survived", d)
		}
	}
}
