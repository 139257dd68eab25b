package e2e

import (
	"net"
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

// TestHostPortRange: `-p 18600-18605:80` publishes the container port on
// the first free host port of the range, as Docker does; a range with no
// free port fails with nothing left behind.
func TestHostPortRange(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "0.0.0.0:18600")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e.must("run", "-d", "--name", "nc-range", "-p", "18600-18605:80", "busybox", "sleep", "600")
	if got := e.must("port", "nc-range", "80"); !strings.HasPrefix(got, "0.0.0.0:18601\n") {
		t.Errorf("port of a range: %q, want 0.0.0.0:18601", got)
	}
	if got := e.inspect("nc-range", "{{json .HostConfig.PortBindings}}"); got != `{"80/tcp":[{"HostIp":"","HostPort":"18600-18605"}]}` {
		t.Errorf("PortBindings: %s", got)
	}
	if r := e.run("run", "--rm", "-p", "18600-18601:80", "busybox", "true"); r.code != 125 {
		t.Errorf("a range without a free port: %s", r)
	}
	if got := e.must("network", "inspect", "-f", "{{len .Containers}}", "bridge"); got != "1\n" {
		t.Errorf("addresses after the failed run: %s", got)
	}
}

// TestPortsZeroHostIPv6: a port published on every address shows [::]
// beside 0.0.0.0 only when the container has an IPv6 address to forward
// to, as Docker 28 without its userland proxy (berth has none: there is
// no IPv6-to-IPv4 translation); Docker 20.10, and 28 with its proxy, list
// [::] for every container because the proxy serves it. ps and port
// write the address in brackets as the docker 28 CLI does.
func TestPortsZeroHostIPv6(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "--ipv6", "--subnet", "fd00:b1::/64", "--subnet", "10.212.0.0/24", "nc-z6")
	e.must("run", "-d", "--name", "nc-z6a", "--network", "nc-z6", "-p", "18444:443", "busybox", "sleep", "600")
	e.must("run", "-d", "--name", "nc-z4", "-p", "18445:443", "busybox", "sleep", "600")
	for _, tc := range []struct{ name, ps, port string }{
		{"nc-z6a", "0.0.0.0:18444->443/tcp, [::]:18444->443/tcp\n", "443/tcp -> 0.0.0.0:18444\n443/tcp -> [::]:18444\n"},
		{"nc-z4", "0.0.0.0:18445->443/tcp\n", "443/tcp -> 0.0.0.0:18445\n"},
	} {
		if got := e.must("ps", "--filter", "name="+tc.name, "--format", "{{.Ports}}"); got != tc.ps {
			t.Errorf("ps %s: %q, want %q", tc.name, got, tc.ps)
		}
		if got := e.must("port", tc.name); got != tc.port {
			t.Errorf("port %s: %q, want %q", tc.name, got, tc.port)
		}
	}
}

// TestUserNetworkRunFlags: --sysctl net.*, --mac-address, --dns-option
// and --add-host host-gateway on a user network, as Docker applies them.
func TestUserNetworkRunFlags(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "nc-flags")
	gw := strings.TrimSpace(e.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "bridge"))
	out := e.must("run", "--rm", "--network", "nc-flags", "--sysctl", "net.core.somaxconn=1234", "--mac-address", "02:42:0a:0b:0c:99",
		"--dns-option", "ndots:3", "--add-host", "hg:host-gateway", "busybox", "sh", "-c",
		"cat /proc/sys/net/core/somaxconn /sys/class/net/eth0/address; grep -E '^(nameserver|options)' /etc/resolv.conf; grep -w hg /etc/hosts")
	if want := "1234\n02:42:0a:0b:0c:99\nnameserver 127.0.0.11\noptions ndots:3\n" + gw + "\thg\n"; out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

// TestUserNetworkLinkAlias: on a user network a --link alias resolves
// through the embedded DNS for the linking container only, as Docker's.
func TestUserNetworkLinkAlias(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "nc-lnk")
	e.must("run", "-d", "--name", "nc-ldb", "--network", "nc-lnk", "busybox", "sleep", "600")
	ip := e.inspect("nc-ldb", `{{(index .NetworkSettings.Networks "nc-lnk").IPAddress}}`)
	if out := e.must("run", "--rm", "--network", "nc-lnk", "--link", "nc-ldb:dbalias", "busybox", "nslookup", "dbalias"); !strings.Contains(out, "Address: "+ip) {
		t.Errorf("link alias from the linking container:\n%s", out)
	}
	if r := e.run("run", "--rm", "--network", "nc-lnk", "busybox", "nslookup", "dbalias"); r.code == 0 && strings.Contains(r.stdout, ip) {
		t.Errorf("link alias resolved for another container: %s", r)
	}
}
