package e2e

import (
	"maps"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestRestoreAfterCrash stands in for a reboot: every monitor dies with -9,
// and `system restore` (what berth-restore.service runs at boot) brings
// back what docker's daemon start would.
func TestRestoreAfterCrash(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "always1", "--restart", "always", "busybox", "sleep", "1000")
	e.must("run", "-d", "--name", "unless1", "--restart", "unless-stopped", "busybox", "sleep", "1000")
	e.must("run", "-d", "--name", "unless2", "--restart", "unless-stopped", "busybox", "sleep", "1000")
	e.must("run", "-d", "--name", "norestart", "busybox", "sleep", "1000")
	e.must("stop", "-t", "0", "unless2")
	for _, name := range []string{"always1", "unless1", "norestart"} {
		syscall.Kill(monitorPid(t, e, name), syscall.SIGKILL)
	}
	eventually(t, 20*time.Second, "crashed containers noticed", func() bool {
		return strings.TrimSpace(e.must("ps", "-q")) == ""
	})
	out := e.must("system", "restore")
	if n := len(strings.Fields(out)); n != 2 {
		t.Fatalf("restore started %d containers:\n%s", n, out)
	}
	for name, want := range map[string]string{"always1": "running", "unless1": "running", "unless2": "exited", "norestart": "exited"} {
		if st := e.inspect(name, "{{.State.Status}}"); st != want {
			t.Errorf("%s: %s, want %s", name, st, want)
		}
	}
}

// TestRestoreAfterReboot goes further than a crash: what a reboot takes
// goes too, for this test's root only. Every monitor and container
// process is killed with -9, the root's mounts (namespaces, root
// filesystems) detached, its bridges, nftables table and dataplane lock
// file deleted, the runroot wiped as a tmpfs would be. `system restore`
// then brings back the containers with a restart policy, reachable on
// their published ports and by name on a user network.
func TestRestoreAfterReboot(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "rb-net")
	e.must("run", "-d", "--name", "rb-web", "--restart", "always", "-p", "127.0.0.1:18592:80", "busybox", "sh", "-c", httpdCmd)
	e.must("run", "-d", "--name", "rb-db", "--restart", "unless-stopped", "--network", "rb-net", "--network-alias", "database",
		"busybox", "nc", "-ll", "-p", "5432", "-e", "cat")
	e.must("run", "-d", "--name", "rb-once", "-p", "127.0.0.1:18593:80", "busybox", "sh", "-c", httpdCmd)
	httpGet(t, "127.0.0.1:18592")
	want := map[string]bool{e.inspect("rb-web", "{{.Id}}"): true, e.inspect("rb-db", "{{.Id}}"): true}

	// The reboot.
	testutil.KillBelow(e.dir)
	testutil.UnmountBelow(e.dir)
	testutil.RemoveDataplane(testutil.RootTable(e.root))
	if err := os.RemoveAll(e.runroot); err != nil {
		t.Fatal(err)
	}
	if left := testutil.DataplaneLeft(testutil.RootTable(e.root)); len(left) > 0 {
		t.Fatalf("the simulated reboot left %v", left)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:18592", 2*time.Second); err == nil {
		c.Close()
		t.Fatal("the published port still answers after the simulated reboot")
	}

	out := e.must("system", "restore")
	got := map[string]bool{}
	for _, id := range strings.Fields(out) {
		got[id] = true
	}
	if !maps.Equal(got, want) {
		t.Fatalf("restore started %v, want %v", got, want)
	}
	for name, st := range map[string]string{"rb-web": "running", "rb-db": "running", "rb-once": "exited"} {
		if s := e.inspect(name, "{{.State.Status}}"); s != st {
			t.Errorf("%s: %s, want %s", name, s, st)
		}
	}
	if body := httpGet(t, "127.0.0.1:18592"); !strings.Contains(body, "hello-from-berth") {
		t.Errorf("published port after restore: %q", body)
	}
	for _, name := range []string{"rb-db", "database"} {
		if out := e.must("run", "--rm", "--network", "rb-net", "busybox", "sh", "-c", "echo hi | nc -w 2 "+name+" 5432"); out != "hi\n" {
			t.Errorf("rb-db via %s after restore: %q", name, out)
		}
	}
	// rb-once's port was given back with it.
	if r := e.run("run", "-d", "--name", "rb-again", "-p", "127.0.0.1:18593:80", "busybox", "sh", "-c", httpdCmd); r.code != 0 {
		t.Errorf("rb-once's port after restore: %s", r)
	}
}
