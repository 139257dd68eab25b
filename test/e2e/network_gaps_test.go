package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Docker behaviours of networking beyond the core (issue 11's gaps):
// inspect's sandbox, container: mode's hostname, DNS after a live
// connect, event order, host-port ranges.

// TestNetworkSandboxInspect: SandboxID is 64 hex digits and SandboxKey
// the container's network namespace once it ran (Docker keeps both after
// a stop); nothing for a created container or one joining another's,
// which has the other's hostname.
func TestNetworkSandboxInspect(t *testing.T) {
	e := newEnv(t)
	e.must("create", "--name", "nc-sb", "--hostname", "sbhost", "busybox", "sleep", "600")
	if got := e.inspect("nc-sb", "{{.NetworkSettings.SandboxID}}|{{.NetworkSettings.SandboxKey}}"); got != "|" {
		t.Errorf("created: %q", got)
	}
	e.must("start", "nc-sb")
	id := e.inspect("nc-sb", "{{.NetworkSettings.SandboxID}}")
	key := e.inspect("nc-sb", "{{.NetworkSettings.SandboxKey}}")
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Errorf("SandboxID %q", id)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(key, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Errorf("SandboxKey %q is no network namespace: %v", key, err)
	}
	e.must("run", "-d", "--name", "nc-sbj", "--network", "container:nc-sb", "busybox", "sleep", "600")
	if got := e.inspect("nc-sbj", "{{.NetworkSettings.SandboxID}}|{{.NetworkSettings.SandboxKey}}"); got != "|" {
		t.Errorf("container: mode: %q", got)
	}
	// The joining container takes the other's hostname, as with Docker
	// (which copies Config.Hostname; the UTS namespace stays its own).
	if got := e.must("exec", "nc-sbj", "sh", "-c", "hostname; cat /etc/hostname"); got != "sbhost\nsbhost\n" {
		t.Errorf("hostname in container: mode: %q", got)
	}
	if got := e.inspect("nc-sbj", "{{.Config.Hostname}}"); got != "sbhost" {
		t.Errorf("Config.Hostname in container: mode: %q", got)
	}
	e.must("stop", "-t", "0", "nc-sb")
	if got := e.inspect("nc-sb", "{{.NetworkSettings.SandboxID}}"); got != id {
		t.Errorf("SandboxID after stop %q, want %q", got, id)
	}
}

// TestNetworkEventOrderOnExit: as Docker, a container that exits dies
// before it leaves its networks, and is destroyed (--rm) after.
func TestNetworkEventOrderOnExit(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "nc-evnet")
	e.must("run", "--rm", "--name", "nc-ev", "--network", "nc-evnet", "busybox", "true")
	out := e.must("events", "--since", "1h", "--until", "0s", "--format", "{{.Type}} {{.Action}}")
	var got []string
	for _, l := range strings.Split(out, "\n") {
		switch l {
		case "network connect", "container start", "container die", "network disconnect", "container destroy":
			got = append(got, l)
		}
	}
	want := "network connect,container start,container die,network disconnect,container destroy"
	if strings.Join(got, ",") != want {
		t.Errorf("events %q, want %q; all:\n%s", strings.Join(got, ","), want, out)
	}
}

// TestLiveConnectDNS: a container started on the default bridge (no
// embedded DNS) and then connected to a user network resolves through
// 127.0.0.11 as Docker's does: its monitor starts the server and
// rewrites resolv.conf; leaving the last user network writes the host's
// resolvers back.
func TestLiveConnectDNS(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "nc-lcnet")
	e.must("run", "-d", "--name", "nc-lcsrv", "--network", "nc-lcnet", "busybox", "sleep", "600")
	e.must("run", "-d", "--name", "nc-lc", "busybox", "sleep", "600")
	if rc := e.must("exec", "nc-lc", "cat", "/etc/resolv.conf"); strings.Contains(rc, "127.0.0.11") {
		t.Fatalf("resolv.conf on the default bridge:\n%s", rc)
	}
	srvIP := e.inspect("nc-lcsrv", `{{(index .NetworkSettings.Networks "nc-lcnet").IPAddress}}`)
	e.must("network", "connect", "nc-lcnet", "nc-lc")
	eventually(t, 10*time.Second, "nc-lcsrv resolved by name after connect", func() bool {
		r := e.run("exec", "nc-lc", "nslookup", "nc-lcsrv")
		return r.code == 0 && strings.Contains(r.stdout, srvIP)
	})
	if rc := e.must("exec", "nc-lc", "cat", "/etc/resolv.conf"); !strings.Contains(rc, "nameserver 127.0.0.11\n") || strings.Count(rc, "nameserver") != 1 {
		t.Errorf("resolv.conf after connect:\n%s", rc)
	}
	e.must("network", "disconnect", "nc-lcnet", "nc-lc")
	eventually(t, 10*time.Second, "host resolvers back after disconnect", func() bool {
		rc := e.must("exec", "nc-lc", "cat", "/etc/resolv.conf")
		return !strings.Contains(rc, "127.0.0.11") && strings.Contains(rc, "nameserver ")
	})
}

// TestPortReuseAfterRunRm: `run --rm -p P` reports the exit before its
// ports are unpublished in the kernel; a `run -p P` right after must
// still get the port and its traffic, and `network rm` right after
// `run --rm` must find the network unused.
func TestPortReuseAfterRunRm(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "nc-rp")
	for i := range 3 {
		e.must("run", "--rm", "--network", "nc-rp", "-p", "127.0.0.1:18591:80", "busybox", "true")
		name := "nc-rp" + strconv.Itoa(i)
		e.must("run", "-d", "--name", name, "--network", "nc-rp", "-p", "127.0.0.1:18591:80", "busybox", "sh", "-c", httpdCmd)
		if body := httpGet(t, "127.0.0.1:18591"); !strings.Contains(body, "hello-from-berth") {
			t.Fatalf("round %d: published port: %q", i, body)
		}
		e.must("rm", "-f", name)
	}
	e.must("run", "--rm", "--network", "nc-rp", "-p", "127.0.0.1:18591:80", "busybox", "true")
	e.must("network", "rm", "nc-rp")
}
