package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestDockerenvAndSize: every container has an empty /.dockerenv (mode
// 0755, as Docker makes it) that is not a change of its own; inspect -s
// and ps -s report the writable layer's size as Docker counts it.
func TestDockerenvAndSize(t *testing.T) {
	e := newEnv(t)
	name := "dockerenv-size"
	out := e.must("run", "--name", name, "busybox", "sh", "-c",
		"stat -c %a:%s:%F /.dockerenv && dd if=/dev/zero of=/a bs=1000 count=5 2>/dev/null && ln /a /b && ln -s /a /c")
	if got := strings.TrimSpace(out); got != "755:0:regular empty file" {
		t.Errorf("/.dockerenv: %q, want 755:0:regular empty file", got)
	}
	if diff := e.must("diff", name); strings.Contains(diff, "dockerenv") {
		t.Errorf("/.dockerenv shows as a change of the container:\n%s", diff)
	}

	imgSize, err := strconv.ParseInt(e.inspect("busybox", "{{.Size}}"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// 5000 bytes once for the hard-linked pair, 2 for the symlink "/a".
	const rw = 5002
	// Without -s the sizes are not computed: nil pointers, as in Docker.
	if got := e.inspect(name, "{{.SizeRw}} {{.SizeRootFs}}"); got != "<nil> <nil>" {
		t.Errorf("inspect without -s: %q, want <nil> <nil>", got)
	}
	if got, want := strings.TrimSpace(e.must("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", name)), fmt.Sprintf("%d %d", rw, rw+imgSize); got != want {
		t.Errorf("inspect -s: %q, want %q", got, want)
	}
	if js := e.must("inspect", name); strings.Contains(js, "SizeRw") {
		t.Errorf("inspect without -s reports SizeRw")
	}
	if got := strings.TrimSpace(e.must("ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}")); !strings.HasPrefix(got, name+" 5kB (virtual ") {
		t.Errorf("ps -s: %q, want %s 5kB (virtual ...)", got, name)
	}
}
