package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestNetNSUnderRunroot checks that a container's network namespace is
// kept under the runroot, named in its spec, kept across the monitor's
// restarts of it, and released when it is removed; and that /etc/hosts
// is written at start in Docker's form.
func TestNetNSUnderRunroot(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "nsr", "--restart", "on-failure:2", "--add-host", "db:10.9.9.9", "busybox",
		"sh", "-c", "readlink /proc/self/ns/net; ip link show lo | grep -c UP; sleep 0.3; exit 1")
	id := e.inspect("nsr", "{{.Id}}")
	eventually(t, 30*time.Second, "two restarts", func() bool {
		return e.inspect("nsr", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
	})
	lines := strings.Fields(e.must("logs", "nsr"))
	if len(lines) != 6 {
		t.Fatalf("logs of three runs: %q", lines)
	}
	for i := 0; i < 6; i += 2 {
		if lines[i] != lines[0] || !strings.HasPrefix(lines[i], "net:[") {
			t.Errorf("run %d had network namespace %s, the first %s", i/2, lines[i], lines[0])
		}
		if lines[i+1] != "1" {
			t.Errorf("run %d: loopback not up", i/2)
		}
	}
	// Stopped for good: the namespace is released.
	if _, err := os.Stat(filepath.Join(e.runroot, "netns", id)); !os.IsNotExist(err) {
		t.Errorf("network namespace file of an exited container: %v", err)
	}

	e.must("run", "-d", "--name", "web", "--hostname", "h1", "--add-host", "db:10.9.9.9", "busybox", "sleep", "100")
	webID := e.inspect("web", "{{.Id}}")
	nsFile := filepath.Join(e.runroot, "netns", webID)
	var st unix.Statfs_t
	if err := unix.Statfs(nsFile, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Fatalf("%s is not a network namespace: %v", nsFile, err)
	}
	// On the default bridge, the container's own address follows, with
	// its hostname, as Docker writes it.
	ip := e.inspect("web", "{{.NetworkSettings.IPAddress}}")
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n10.9.9.9\tdb\n" + ip + "\th1\n"
	if ip == "" {
		t.Fatal("no IPAddress on the default bridge")
	}
	if got := e.must("exec", "web", "cat", "/etc/hosts"); got != want {
		t.Errorf("/etc/hosts:\n%s\nwant:\n%s", got, want)
	}
	e.must("rm", "-f", "web")
	if _, err := os.Stat(nsFile); !os.IsNotExist(err) {
		t.Errorf("network namespace file after rm: %v", err)
	}

	// A monitor killed with -9: reads show the container exited at once;
	// the next transition on it reconciles it and releases its namespace.
	e.must("run", "-d", "--name", "orphan", "busybox", "sleep", "100")
	orphanNS := filepath.Join(e.runroot, "netns", e.inspect("orphan", "{{.Id}}"))
	if err := unix.Kill(monitorPid(t, e, "orphan"), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the orphan seen exited", func() bool { return e.inspect("orphan", "{{.State.Status}}") == "exited" })
	e.must("stop", "orphan")
	if _, err := os.Stat(orphanNS); !os.IsNotExist(err) {
		t.Errorf("network namespace file after reconciliation: %v", err)
	}
}
