package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"golang.org/x/sys/unix"
)

// guardElementPorts lists, from `nft -j list table bridge <table>`, the
// ports (host veths) named by any element of the root's bridge table
// (anti-spoofing, internal/network/dataplane/antispoof.go), with how many
// elements name each.
func guardElementPorts(t *testing.T, e *env) map[string]int {
	t.Helper()
	nft := testutil.RequiresBinary(t, "nft")
	table := strings.TrimSpace(e.must("network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "bridge"))
	out, err := exec.Command(nft, "-j", "list", "table", "bridge", table).Output()
	if err != nil {
		t.Fatalf("nft -j list table bridge %s: %v\n%s", table, err, out)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("nft's JSON: %v\n%s", err, out)
	}
	ports := map[string]int{}
	for _, obj := range doc.Nftables {
		for _, kind := range []string{"set", "map"} {
			raw, ok := obj[kind]
			if !ok {
				continue
			}
			var s struct {
				Elem []any `json:"elem"`
			}
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatalf("nft's JSON %s: %v", kind, err)
			}
			for _, el := range s.Elem {
				// Keys are strings, concatenations, elements with
				// a comment or map entries: any string in them
				// that is a veth's name is the element's port.
				seen := map[string]bool{}
				walkStrings(el, func(v string) {
					if strings.HasPrefix(v, "veth") && !seen[v] {
						seen[v] = true
						ports[v]++
					}
				})
			}
		}
	}
	return ports
}

func walkStrings(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case []any:
		for _, x := range v {
			walkStrings(x, fn)
		}
	case map[string]any:
		for _, x := range v {
			walkStrings(x, fn)
		}
	}
}

// TestRemovedContainersLeaveNoGuards: after `run --rm` (and `rm -f` of a
// running container) on the default bridge, the root's bridge table holds
// no guard element of the removed containers (their monitor deletes them
// after reporting the removal, so the test polls), while a running
// container's stay (a stopped one's: TestStoppedContainerGuards).
func TestRemovedContainersLeaveNoGuards(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "gg-live", "busybox", "sleep", "600")
	e.must("run", "-d", "--name", "gg-stopped", "busybox", "sleep", "600")
	e.must("stop", "-t", "0", "gg-stopped")
	e.must("run", "-d", "--name", "gg-rmf", "busybox", "sleep", "600")
	nid := e.inspect("gg-live", "{{.NetworkSettings.Networks.bridge.NetworkID}}")
	port := func(ref string) string { return hostIfName(e.inspect(ref, "{{.Id}}"), nid) }
	live, rmf := port("gg-live"), port("gg-rmf")

	removed := map[string]bool{rmf: true}
	e.must("rm", "-f", "gg-rmf")
	const n = 8
	for i := range n {
		cid := filepath.Join(e.dir, fmt.Sprintf("cid-%d", i))
		e.must("run", "--rm", "--cidfile", cid, "busybox", "true")
		id, err := os.ReadFile(cid)
		if err != nil {
			t.Fatal(err)
		}
		removed[hostIfName(strings.TrimSpace(string(id)), nid)] = true
	}

	var ports map[string]int
	deadline := time.Now().Add(20 * time.Second)
	for {
		ports = guardElementPorts(t, e)
		var left []string
		for p := range ports {
			if removed[p] {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(left)
			t.Fatalf("20s after their removal, the bridge table still holds guards of removed containers' ports %v (all ports: %v)", left, ports)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A port has 5 elements with IPv4 only: ports, port-mac, port-ip4,
	// port-ip6 (its link-local address), port-digest.
	if ports[live] != 5 {
		t.Errorf("the running container's port %s has %d guard elements, want 5 (all ports: %v)", live, ports[live], ports)
	}
	e.must("start", "gg-stopped")
	if got := e.inspect("gg-stopped", "{{.State.Running}}"); got != "true" {
		t.Fatalf("gg-stopped restarted: running=%s", got)
	}
}

// TestKilledMonitorGuardsPruned bounds the worst case: a container whose
// monitor is killed before it deletes the guards (here before the exit
// even) leaves them, and the next prune (its network sweep reconciles
// the dataplane) deletes them, keeping a running container's.
func TestKilledMonitorGuardsPruned(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "gk-live", "busybox", "sleep", "600")
	e.must("run", "-d", "--name", "gk-killed", "busybox", "sleep", "600")
	nid := e.inspect("gk-live", "{{.NetworkSettings.Networks.bridge.NetworkID}}")
	live := hostIfName(e.inspect("gk-live", "{{.Id}}"), nid)
	killed := hostIfName(e.inspect("gk-killed", "{{.Id}}"), nid)
	if err := unix.Kill(monitorPid(t, e, "gk-killed"), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "gk-killed seen exited", func() bool { return e.inspect("gk-killed", "{{.State.Status}}") == "exited" })
	e.must("rm", "gk-killed")
	if guardElementPorts(t, e)[killed] == 0 {
		t.Fatal("rm of the container deleted its guards: the prune has nothing to prove")
	}
	e.must("network", "prune", "-f")
	eventually(t, 20*time.Second, "the killed container's guards pruned", func() bool { return guardElementPorts(t, e)[killed] == 0 })
	if got := guardElementPorts(t, e)[live]; got != 5 {
		t.Errorf("the running container's port %s has %d guard elements after the prune, want 5", live, got)
	}
}
