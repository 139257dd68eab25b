package e2e

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/rootclean"
)

// TestSystemPruneLeavesNoDataplane: once a root's containers are stopped,
// `system prune` leaves nothing of it in the kernel or in the host-wide
// lock directory (bridges, nftables table, lock file), and the next run
// makes it all again.
func TestSystemPruneLeavesNoDataplane(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "hy-net")
	e.must("run", "-d", "--name", "hy-a", "-p", "127.0.0.1:18591:80", "busybox", "sh", "-c", httpdCmd)
	e.must("run", "-d", "--name", "hy-b", "--network", "hy-net", "busybox", "sleep", "600")
	table := testutil.RootTable(e.root)
	left := rootclean.Left(e.root)
	all := strings.Join(left, ", ")
	links := strings.Count(all, "link ")
	// Two bridges, both tables, the lock file, the socket redirect's
	// programs for the 127.0.0.1 port.
	for _, want := range []string{"nftables table inet " + table, "nftables table bridge " + table, "lock file /run/berth-dataplane/" + table + ".lock", "socket redirect programs"} {
		if links != 2 || !strings.Contains(all, want) {
			t.Fatalf("while containers run, the root has in the kernel: %s; want two bridges and %s", all, want)
		}
	}
	e.must("stop", "-t", "0", "hy-a", "hy-b")
	e.must("system", "prune", "-f")
	if left := rootclean.Left(e.root); len(left) > 0 {
		t.Fatalf("after system prune the root left: %s", strings.Join(left, ", "))
	}
	e.must("run", "-d", "--name", "hy-c", "-p", "127.0.0.1:18591:80", "busybox", "sh", "-c", httpdCmd)
	if got := httpGet(t, "127.0.0.1:18591"); !strings.Contains(got, "hello-from-berth") {
		t.Fatalf("published port after the root was pruned and run again: %q", got)
	}
}
