package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

type ociDesc struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Platform    map[string]string `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// ociLayout writes an OCI image layout to dir: tag "v1", an image of
// two gzip layers, and tag "multi", an index of two platforms. It
// returns the digests of every blob and of the tagged manifests.
func ociLayout(t *testing.T, dir string) (blobs map[string][]byte, v1, multi string) {
	t.Helper()
	blobs = map[string][]byte{}
	add := func(mt string, b []byte) ociDesc {
		d := digestOf(b)
		blobs[d] = b
		p := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:"))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return ociDesc{MediaType: mt, Digest: d, Size: len(b)}
	}
	layer := func(name string, size int) []byte {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		content := bytes.Repeat([]byte(name+"\n"), size/(len(name)+1))
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)})
		tw.Write(content)
		tw.Close()
		var gb bytes.Buffer
		gw := gzip.NewWriter(&gb)
		gw.Write(tb.Bytes())
		gw.Close()
		return gb.Bytes()
	}
	img := func(arch string) ociDesc {
		var layers []ociDesc
		var diffs []string
		for i, n := range []string{"etc-" + arch, "data-" + arch} {
			l := layer(n, 4096*(i+1))
			zr, _ := gzip.NewReader(bytes.NewReader(l))
			var raw bytes.Buffer
			raw.ReadFrom(zr)
			diffs = append(diffs, digestOf(raw.Bytes()))
			layers = append(layers, add("application/vnd.oci.image.layer.v1.tar+gzip", l))
		}
		cfg, _ := json.Marshal(map[string]any{"architecture": arch, "os": "linux", "config": map[string]any{"Cmd": []string{"/bin/sh"}},
			"rootfs": map[string]any{"type": "layers", "diff_ids": diffs}})
		m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": add("application/vnd.oci.image.config.v1+json", cfg), "layers": layers})
		d := add("application/vnd.oci.image.manifest.v1+json", m)
		d.Platform = map[string]string{"architecture": arch, "os": "linux"}
		return d
	}
	one := img("amd64")
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []ociDesc{img("amd64"), img("arm64")}})
	multiDesc := add("application/vnd.oci.image.index.v1+json", idx)
	one.Platform = nil
	one.Annotations = map[string]string{"org.opencontainers.image.ref.name": "v1"}
	multiDesc.Annotations = map[string]string{"org.opencontainers.image.ref.name": "multi"}
	top, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []ociDesc{one, multiDesc}})
	os.WriteFile(filepath.Join(dir, "index.json"), top, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return blobs, one.Digest, multiDesc.Digest
}

// dockerRegistry starts Debian's docker-registry (distribution 2.8.2)
// with a config of our own on a free loopback port, and stops it by its
// pid when the test ends.
func dockerRegistry(t *testing.T) string {
	t.Helper()
	bin := testutil.RequiresBinary(t, "docker-registry")
	dir := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	cmd := exec.Command(bin, "serve", cfgPath)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("docker-registry log:\n%s", tail(log.Bytes(), 4096))
		}
	})
	waitHTTP(t, "http://"+addr+"/v2/", http.DefaultClient)
	return addr
}

type skopeo struct {
	t   *testing.T
	bin string
	ctx context.Context
}

func (s skopeo) run(args ...string) string {
	s.t.Helper()
	return run(s.t, s.ctx, s.bin, append([]string{"--insecure-policy"}, args...)...)
}

// rawDigest is the digest of the manifest skopeo reads at ref.
func (s skopeo) rawDigest(ref string, extra ...string) string {
	s.t.Helper()
	return digestOf([]byte(s.run(append(append([]string{"inspect", "--raw", "--tls-verify=false"}, extra...), ref)...)))
}

// TestInteropSkopeoDockerRegistry: skopeo moves images docker-registry ->
// berth -> docker-registry and berth -> an OCI layout, and every manifest
// and blob keeps its digest; Docker schema2 images and multi-platform
// indexes too.
func TestInteropSkopeoDockerRegistry(t *testing.T) {
	sk := skopeo{t: t, bin: testutil.RequiresBinary(t, "skopeo")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sk.ctx = ctx
	src := t.TempDir()
	blobs, v1, multi := ociLayout(t, src)
	dr := dockerRegistry(t)
	br := serve(t).addr
	cp := func(from, to string, extra ...string) {
		t.Helper()
		args := []string{"copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false"}
		if !strings.Contains(strings.Join(extra, " "), "--format") {
			// Fail rather than convert: every copy must keep the digests.
			args = append(args, "--preserve-digests")
		}
		sk.run(append(append(args, extra...), from, to)...)
	}

	cp("oci:"+src+":v1", "docker://"+dr+"/interop/img:v1")
	cp("oci:"+src+":multi", "docker://"+dr+"/interop/img:multi", "--all")
	cp("docker://"+dr+"/interop/img:v1", "docker://"+br+"/interop/img:v1")
	cp("docker://"+dr+"/interop/img:multi", "docker://"+br+"/interop/img:multi", "--all")
	cp("docker://"+br+"/interop/img:v1", "docker://"+dr+"/interop/back:v1")
	cp("docker://"+br+"/interop/img:multi", "docker://"+dr+"/interop/back:multi", "--all")
	out := t.TempDir()
	cp("docker://"+br+"/interop/img:v1", "oci:"+out+":v1")
	cp("docker://"+br+"/interop/img:multi", "oci:"+out+":multi", "--all")

	for _, c := range []struct{ ref, want string }{
		{"docker://" + dr + "/interop/img:v1", v1},
		{"docker://" + br + "/interop/img:v1", v1},
		{"docker://" + dr + "/interop/back:v1", v1},
		{"docker://" + br + "/interop/img:multi", multi},
		{"docker://" + dr + "/interop/back:multi", multi},
	} {
		if got := sk.rawDigest(c.ref); got != c.want {
			t.Errorf("%s: manifest digest %s, want %s", c.ref, got, c.want)
		}
	}
	// The layout skopeo wrote from berth's registry: the same manifests,
	// and every blob byte for byte.
	var top struct{ Manifests []ociDesc }
	b, _ := os.ReadFile(filepath.Join(out, "index.json"))
	json.Unmarshal(b, &top)
	got := map[string]bool{}
	for _, m := range top.Manifests {
		got[m.Annotations["org.opencontainers.image.ref.name"]+"="+m.Digest] = true
	}
	if !got["v1="+v1] || !got["multi="+multi] {
		t.Errorf("OCI layout index: %s", b)
	}
	for d, want := range blobs {
		b, err := os.ReadFile(filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("blob %s: %v", d, err)
		}
	}

	// Docker schema2: converted once on the way in, then kept.
	cp("oci:"+src+":v1", "docker://"+br+"/interop/s2:v1", "--format", "v2s2")
	s2 := sk.rawDigest("docker://" + br + "/interop/s2:v1")
	var mt struct{ MediaType string }
	json.Unmarshal([]byte(sk.run("inspect", "--raw", "--tls-verify=false", "docker://"+br+"/interop/s2:v1")), &mt)
	if mt.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("schema2 media type %q", mt.MediaType)
	}
	cp("docker://"+br+"/interop/s2:v1", "docker://"+dr+"/interop/s2:v1")
	cp("docker://"+dr+"/interop/s2:v1", "docker://"+br+"/interop/s2back:v1")
	for _, ref := range []string{"docker://" + dr + "/interop/s2:v1", "docker://" + br + "/interop/s2back:v1"} {
		if got := sk.rawDigest(ref); got != s2 {
			t.Errorf("%s: %s, want %s", ref, got, s2)
		}
	}
	// Tags and delete, as skopeo sees them.
	if tags := sk.run("list-tags", "--tls-verify=false", "docker://"+br+"/interop/img"); !strings.Contains(tags, `"multi"`) || !strings.Contains(tags, `"v1"`) {
		t.Errorf("list-tags: %s", tags)
	}
	sk.run("delete", "--tls-verify=false", "docker://"+br+"/interop/s2back:v1")
	if _, err := exec.CommandContext(ctx, sk.bin, "inspect", "--raw", "--tls-verify=false", "docker://"+br+"/interop/s2back:v1").CombinedOutput(); err == nil {
		t.Error("deleted manifest still readable")
	}
}

// TestInteropAuthTLS: skopeo logs in to berth's registry over TLS with
// token auth (docker's flow: a Bearer challenge, then /token with Basic
// credentials), pushes and pulls with the digests kept, and a wrong
// password is refused.
func TestInteropAuthTLS(t *testing.T) {
	sk := skopeo{t: t, bin: testutil.RequiresBinary(t, "skopeo")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sk.ctx = ctx
	src := t.TempDir()
	_, v1, _ := ociLayout(t, src)
	cert, key, certDir := selfSigned(t)
	for _, mode := range []string{"token", "basic"} {
		t.Run(mode, func(t *testing.T) {
			sk.t = t
			br := serve(t, "--tls-cert", cert, "--tls-key", key, "--htpasswd", writeHtpasswd(t, "alice", "pw-"+mode), "--auth", mode).addr
			ref := "docker://" + br + "/secure/img:v1"
			sk.run("copy", "-q", "--dest-cert-dir", certDir, "--dest-creds", "alice:pw-"+mode, "oci:"+src+":v1", ref)
			if got := digestOf([]byte(sk.run("inspect", "--raw", "--cert-dir", certDir, "--creds", "alice:pw-"+mode, ref))); got != v1 {
				t.Errorf("digest %s, want %s", got, v1)
			}
			out, err := exec.CommandContext(ctx, sk.bin, "--insecure-policy", "inspect", "--raw", "--cert-dir", certDir, "--creds", "alice:wrong", ref).CombinedOutput()
			if err == nil || !strings.Contains(strings.ToLower(string(out)), "unauthorized") {
				t.Errorf("wrong password: %v %s", err, out)
			}
			out, err = exec.CommandContext(ctx, sk.bin, "--insecure-policy", "inspect", "--raw", "--cert-dir", certDir, ref).CombinedOutput()
			if err == nil {
				t.Errorf("no credentials: accepted: %s", out)
			}
		})
	}
}

// TestPullThroughCache: berth as a pull-through cache of docker-registry;
// skopeo pulls through it with every digest kept (images and an index),
// and a push to it is refused. (The unit tests cover an upstream gone.)
func TestPullThroughCache(t *testing.T) {
	sk := skopeo{t: t, bin: testutil.RequiresBinary(t, "skopeo")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sk.ctx = ctx
	src := t.TempDir()
	_, v1, multi := ociLayout(t, src)
	dr := dockerRegistry(t)
	sk.run("copy", "-q", "--dest-tls-verify=false", "--preserve-digests", "oci:"+src+":v1", "docker://"+dr+"/library/img:v1")
	sk.run("copy", "-q", "--dest-tls-verify=false", "--preserve-digests", "--all", "oci:"+src+":multi", "docker://"+dr+"/library/img:multi")
	p := serve(t, "--proxy-remote-url", "http://"+dr)
	out := t.TempDir()
	sk.run("copy", "-q", "--src-tls-verify=false", "--preserve-digests", "docker://"+p.addr+"/library/img:v1", "oci:"+out+":v1")
	sk.run("copy", "-q", "--src-tls-verify=false", "--preserve-digests", "--all", "docker://"+p.addr+"/library/img:multi", "oci:"+out+":multi")
	for ref, want := range map[string]string{"v1": v1, "multi": multi} {
		if got := sk.rawDigest("docker://" + p.addr + "/library/img:" + ref); got != want {
			t.Errorf("%s through the cache: %s, want %s", ref, got, want)
		}
	}
	if _, err := exec.CommandContext(ctx, sk.bin, "--insecure-policy", "copy", "-q", "--dest-tls-verify=false", "oci:"+src+":v1", "docker://"+p.addr+"/library/pushed:v1").CombinedOutput(); err == nil {
		t.Error("push to the cache accepted")
	}
}
