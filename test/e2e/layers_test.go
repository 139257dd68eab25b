package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// tarOf is a layer tar holding files (name -> content).
func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(content))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// dockerSaveTar writes an archive in Docker 20.10's `docker save` layout
// (<id>.json, <dir>/layer.tar, manifest.json) of one image made of layers,
// tagged tag, and returns its path.
func dockerSaveTar(t testing.TB, dir, tag string, layers [][]byte) string {
	t.Helper()
	var diffIDs, layerPaths []string
	var history []map[string]any
	for _, l := range layers {
		h := sha256Hex(l)
		diffIDs = append(diffIDs, "sha256:"+h)
		layerPaths = append(layerPaths, h+"/layer.tar")
		history = append(history, map[string]any{"created": "2024-01-01T00:00:00Z", "created_by": "layer"})
	}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
		"config":  map[string]any{"Cmd": []string{"sh"}},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": history,
	})
	cfgName := sha256Hex(cfg) + ".json"
	manifest, _ := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{tag}, "Layers": layerPaths}})
	path := filepath.Join(dir, "image.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	put := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	put(cfgName, cfg)
	written := map[string]bool{}
	for i, l := range layers {
		if written[layerPaths[i]] {
			continue
		}
		written[layerPaths[i]] = true
		put(layerPaths[i], l)
	}
	put("manifest.json", manifest)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunManyLayers loads a 125-layer image (docker runs those) and reads
// a file of its bottom and of its top layer; past what one overlay mount
// takes, run fails with a clear error and leaves nothing mounted.
func TestRunManyLayers(t *testing.T) {
	e := newEnv(t)
	busybox, err := os.ReadFile(testutil.BusyboxTar(t))
	if err != nil {
		t.Fatal(err)
	}
	mk := func(n int) [][]byte {
		layers := [][]byte{tarOf(t, map[string]string{"bottom.txt": "bottom\n"}), busybox}
		for i := 2; i < n; i++ {
			layers = append(layers, tarOf(t, map[string]string{fmt.Sprintf("l/%03d", i): "x", "top.txt": fmt.Sprintf("top %d\n", i)}))
		}
		return layers
	}
	e.must("load", "-i", dockerSaveTar(t, t.TempDir(), "many:125", mk(125)))
	if out := e.must("run", "--rm", "many:125", "cat", "/bottom.txt", "/top.txt", "/l/002"); out != "bottom\ntop 124\nx" {
		t.Fatalf("run of a 125-layer image printed %q", out)
	}

	e.must("load", "-i", dockerSaveTar(t, t.TempDir(), "many:200", mk(200)))
	r := e.run("run", "--rm", "many:200", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "too many layers (200)") {
		t.Fatalf("run of a 200-layer image: %s", r)
	}
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		_, fstype, _ := strings.Cut(line, " - ")
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.dir) && strings.HasPrefix(fstype, "overlay ") {
			t.Fatalf("an overlay is left mounted: %s", line)
		}
	}
}
