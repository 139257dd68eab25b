package registry

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pushBlob uploads b to repo of the registry at addr (monolithic POST).
func pushBlob(t *testing.T, addr, repo string, b []byte) string {
	t.Helper()
	d := digestOf(b)
	resp, err := http.Post(fmt.Sprintf("http://%s/v2/%s/blobs/uploads/?digest=%s", addr, repo, d), "application/octet-stream", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push blob: %s", resp.Status)
	}
	return d
}

func status(t *testing.T, method, url string, body []byte, header ...string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func ageTree(t *testing.T, dir string) {
	t.Helper()
	old := time.Now().Add(-2 * time.Hour)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Chtimes(p, old, old)
		}
		return nil
	})
}

func blobFile(root, d string) string {
	hex := strings.TrimPrefix(d, "sha256:")
	return filepath.Join(root, "blobs", "sha256", hex[:2], hex)
}

// TestGarbageCollectCommand: `berth registry garbage-collect` asks a
// running server to collect (online), collects itself when none runs,
// and a second server on the same root is refused.
func TestGarbageCollectCommand(t *testing.T) {
	r := serve(t, "--gc-grace", "1s")
	cfg := []byte(`{"os":"linux"}`)
	cfgD := pushBlob(t, r.addr, "gc/app", cfg)
	layerD := pushBlob(t, r.addr, "gc/app", []byte("kept layer"))
	orphan := pushBlob(t, r.addr, "gc/app", []byte("orphan layer"))
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":10}]}`, cfgD, len(cfg), layerD)
	if code := status(t, "PUT", "http://"+r.addr+"/v2/gc/app/manifests/v1", []byte(m), "Content-Type", "application/vnd.oci.image.manifest.v1+json"); code != 201 {
		t.Fatalf("manifest: %d", code)
	}
	ageTree(t, r.root)

	// A second server on the root: refused.
	out, err := exec.Command(berthBin, "registry", "serve", "--addr", "127.0.0.1:0", "--root", r.root).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by process") {
		t.Fatalf("second server: %v %s", err, out)
	}

	// Online: the server collects while it serves. Its grace window
	// (1s) also covers the digests the pushes touched in memory, so
	// ask until the orphan goes, within a deadline.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.Command(berthBin, "registry", "garbage-collect", "--root", r.root).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "asked the registry server") {
			t.Fatalf("garbage-collect: %v %s", err, out)
		}
		if _, err := os.Stat(blobFile(r.root, orphan)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the orphan blob was not collected")
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, d := range []string{cfgD, layerD} {
		if code := status(t, "GET", "http://"+r.addr+"/v2/gc/app/blobs/"+d, nil); code != 200 {
			t.Fatalf("%s after GC: %d", d, code)
		}
	}
	if code := status(t, "GET", "http://"+r.addr+"/v2/gc/app/blobs/"+orphan, nil); code != 404 {
		t.Fatalf("orphan after GC: %d", code)
	}

	// Offline: a root no server holds is collected by the command itself.
	r.stop()
	out, err = exec.Command(berthBin, "registry", "garbage-collect", "--root", r.root, "--gc-grace", "1s").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed 0 blobs") {
		t.Fatalf("offline garbage-collect, nothing to do: %v %s", err, out)
	}
	r2 := serve(t)
	orphan2 := pushBlob(t, r2.addr, "x", []byte("offline orphan"))
	r2.stop()
	ageTree(t, r2.root)
	out, err = exec.Command(berthBin, "registry", "garbage-collect", "--root", r2.root).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed 1 blobs") {
		t.Fatalf("offline garbage-collect: %v %s", err, out)
	}
	if _, err := os.Stat(blobFile(r2.root, orphan2)); err == nil {
		t.Fatal("offline: orphan survived")
	}
}
