package registry

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestDockerClient drives berth's registry with docker itself (a private
// dockerd): login through the token flow, push, pull by tag and digest,
// search, logout.
func TestDockerClient(t *testing.T) {
	r := serve(t, "--htpasswd", writeHtpasswd(t, "alice", "docker-pw"), "--auth", "token")
	d := testutil.StartDockerd(t, "berth-regsrv-dockerd-")
	ref := r.addr + "/team/tiny:1"

	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 6, Typeflag: tar.TypeReg})
	tw.Write([]byte("hello\n"))
	tw.Close()
	if res := d.Run(tb.Bytes(), "import", "-", ref); res.Code != 0 {
		t.Fatalf("docker import: %s", res)
	}
	if res := d.Run(nil, "push", ref); res.Code == 0 || !strings.Contains(res.Stderr, "unauthorized") {
		t.Fatalf("push before login: %s", res)
	}
	if res := d.Run([]byte("wrong\n"), "login", r.addr, "-u", "alice", "--password-stdin"); res.Code == 0 {
		t.Fatalf("login with a wrong password: %s", res)
	}
	if res := d.Run([]byte("docker-pw\n"), "login", r.addr, "-u", "alice", "--password-stdin"); res.Code != 0 || !strings.Contains(res.Stdout, "Login Succeeded") {
		t.Fatalf("login: %s", res)
	}
	res := d.Run(nil, "push", ref)
	if res.Code != 0 {
		t.Fatalf("push: %s", res)
	}
	_, after, _ := strings.Cut(res.Stdout, "digest: ")
	digest, _, _ := strings.Cut(after, " ")
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("push printed no digest: %s", res)
	}
	if res := d.Run(nil, "rmi", ref); res.Code != 0 {
		t.Fatalf("rmi: %s", res)
	}
	if res := d.Run(nil, "pull", ref); res.Code != 0 || !strings.Contains(res.Stdout, digest) {
		t.Fatalf("pull: %s", res)
	}
	if res := d.Run(nil, "pull", r.addr+"/team/tiny@"+digest); res.Code != 0 {
		t.Fatalf("pull by digest: %s", res)
	}
	if res := d.Run(nil, "search", r.addr+"/team"); res.Code != 0 || !strings.Contains(res.Stdout, "team/tiny") {
		t.Fatalf("search: %s", res)
	}
	if res := d.Run(nil, "logout", r.addr); res.Code != 0 {
		t.Fatalf("logout: %s", res)
	}
	d.Run(nil, "rmi", ref, r.addr+"/team/tiny@"+digest)
	if res := d.Run(nil, "pull", ref); res.Code == 0 {
		t.Fatalf("pull after logout: %s", res)
	}
}
