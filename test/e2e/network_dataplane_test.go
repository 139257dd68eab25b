package e2e

// These tests drive the real dataplane and embedded DNS: traffic between
// the host, published ports and containers, names on user networks.

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"golang.org/x/sys/unix"
)

// hostIfName is berth's name for a container's veth on a network
// (internal/network.HostIfName).
func hostIfName(containerID, networkID string) string {
	h := sha256.Sum256([]byte("veth/" + containerID + "/" + networkID))
	return "veth" + hex.EncodeToString(h[:])[:11]
}

func httpGet(t *testing.T, addr string) string {
	t.Helper()
	var last error
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
			var b strings.Builder
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				b.WriteString(sc.Text() + "\n")
			}
			c.Close()
			if b.Len() > 0 {
				return b.String()
			}
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", addr, last)
	return ""
}

// guardedPorts are the ports (host veths) that have anti-spoofing
// elements in the root's bridge table (internal/network/dataplane,
// antispoof.go).
func guardedPorts(t *testing.T, e *env) map[string]bool {
	t.Helper()
	nft := testutil.RequiresBinary(t, "nft")
	table := strings.TrimSpace(e.must("network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.name"}}`, "bridge"))
	out, err := exec.Command(nft, "list", "map", "bridge", table, "ports").CombinedOutput()
	if err != nil && strings.Contains(string(out), "No such file or directory") {
		return nil // no network was ever set up
	}
	if err != nil {
		t.Fatalf("nft list map bridge %s ports: %v\n%s", table, err, out)
	}
	ports := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		if name := strings.Trim(f, `"`); strings.HasPrefix(f, `"veth`) {
			ports[name] = true
		}
	}
	return ports
}

const httpdCmd = "mkdir -p /www && echo hello-from-berth > /www/index.html && exec httpd -f -p 80 -h /www"

// TestBridgeTraffic: host → published port on 127.0.0.1 and → the
// container's address; container → container by address on the default
// bridge; nothing of the endpoint left after rm (and a sweep).
func TestBridgeTraffic(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "dp-web", "-p", "127.0.0.1:18580:80", "busybox", "sh", "-c", httpdCmd)
	if body := httpGet(t, "127.0.0.1:18580"); !strings.Contains(body, "hello-from-berth") {
		t.Fatalf("published port: %q", body)
	}
	// The host's connection is aimed at the container when it is made
	// (the socket redirect the container's monitor installed): its
	// socket has the bridge's gateway as local address, 127.0.0.1:18580
	// as peer. Without a cgroup2 mount, DNAT: 127.0.0.1 both.
	wantLocal := "127.0.0.1"
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), " - cgroup2 ") {
		wantLocal = e.inspect("dp-web", "{{.NetworkSettings.Gateway}}")
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:18580", 5*time.Second); err != nil {
		t.Fatal(err)
	} else {
		local, _, _ := net.SplitHostPort(c.LocalAddr().String())
		if local != wantLocal || c.RemoteAddr().String() != "127.0.0.1:18580" {
			t.Errorf("connection to 127.0.0.1:18580: local %s, peer %s; want %s, 127.0.0.1:18580", c.LocalAddr(), c.RemoteAddr(), wantLocal)
		}
		c.Close()
	}
	ip := e.inspect("dp-web", "{{.NetworkSettings.IPAddress}}")
	if body := httpGet(t, ip+":80"); !strings.Contains(body, "hello-from-berth") {
		t.Fatalf("container address: %q", body)
	}
	out := e.must("run", "--rm", "busybox", "sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc "+ip+" 80")
	if !strings.Contains(out, "hello-from-berth") {
		t.Fatalf("container to container: %q", out)
	}
	id, nid := e.inspect("dp-web", "{{.Id}}"), e.inspect("dp-web", "{{.NetworkSettings.Networks.bridge.NetworkID}}")
	veth := "/sys/class/net/" + hostIfName(id, nid)
	if _, err := os.Stat(veth); err != nil {
		t.Fatalf("host veth: %v", err)
	}
	if ports := guardedPorts(t, e); !ports[hostIfName(id, nid)] {
		t.Errorf("the container's port %s is not guarded: %v", hostIfName(id, nid), ports)
	}
	e.must("rm", "-f", "dp-web")
	// The kernel deletes the veth with the namespace, in the background.
	eventually(t, 10*time.Second, "host veth gone after rm", func() bool {
		_, err := os.Stat(veth)
		return os.IsNotExist(err)
	})
	eventually(t, 10*time.Second, "the published container's guards gone after rm", func() bool { return !guardedPorts(t, e)[hostIfName(id, nid)] })
	// The run --rm container published nothing: its release left its
	// guards (dataplane.portDigest), which name no interface once its
	// veth is gone, until a sweep takes them.
	eventually(t, 10*time.Second, "guards left only for ports that are gone", func() bool {
		for p := range guardedPorts(t, e) {
			if _, err := os.Stat("/sys/class/net/" + p); err == nil {
				return false
			}
		}
		return true
	})
	e.must("network", "prune", "-f")
	if left := guardedPorts(t, e); len(left) > 0 {
		t.Errorf("guards left after a sweep (network prune): %v", left)
	}
}

// TestPortTakenLeavesNothing: a host port another process holds gives
// Docker's error and leaves no address or link behind.
func TestPortTakenLeavesNothing(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "0.0.0.0:18581")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := e.run("run", "-d", "--name", "dp-taken", "-p", "18581:80", "busybox", "sleep", "600")
	if r.code != 125 || !strings.Contains(r.stderr, "port is already allocated") {
		t.Fatalf("run with a taken port: %s", r)
	}
	if got := e.must("network", "inspect", "-f", "{{len .Containers}}", "bridge"); got != "0\n" {
		t.Fatalf("addresses after a failed start: %s", got)
	}
	if ports := guardedPorts(t, e); len(ports) != 0 {
		t.Fatalf("guards after a failed start: %v", ports)
	}
}

// TestUserNetworkNames: containers resolve each other by name, alias and
// short ID on a user network through 127.0.0.11, not across networks.
func TestUserNetworkNames(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "dp-app")
	e.must("network", "create", "dp-other")
	e.must("run", "-d", "--name", "dp-db", "--network", "dp-app", "--network-alias", "database", "busybox", "nc", "-ll", "-p", "5432", "-e", "cat")
	short := e.inspect("dp-db", "{{.Id}}")[:12]
	for _, name := range []string{"dp-db", "database", short} {
		out := e.must("run", "--rm", "--network", "dp-app", "busybox", "sh", "-c", "echo hi | nc -w 2 "+name+" 5432")
		if out != "hi\n" {
			t.Errorf("via %s: %q", name, out)
		}
	}
	if rc := e.must("run", "--rm", "--network", "dp-app", "busybox", "cat", "/etc/resolv.conf"); !strings.HasPrefix(rc, "nameserver 127.0.0.11\n") {
		t.Errorf("resolv.conf: %q", rc)
	}
	if r := e.run("run", "--rm", "--network", "dp-other", "busybox", "nslookup", "dp-db", "127.0.0.11"); r.code == 0 && strings.Contains(r.stdout, e.inspect("dp-db", `{{(index .NetworkSettings.Networks "dp-app").IPAddress}}`)) {
		t.Errorf("dp-db resolved from another network: %s", r)
	}
}

// TestIPv6Traffic: containers on a dual-stack user network reach each
// other over IPv6.
func TestIPv6Traffic(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "--ipv6", "--subnet", "fd00:b1::/64", "dp-v6")
	e.must("run", "-d", "--name", "dp-v6srv", "--network", "dp-v6", "busybox", "nc", "-ll", "-p", "7000", "-e", "cat")
	ip6 := e.inspect("dp-v6srv", `{{(index .NetworkSettings.Networks "dp-v6").GlobalIPv6Address}}`)
	if out := e.must("run", "--rm", "--network", "dp-v6", "busybox", "sh", "-c", "echo six | nc -w 2 "+ip6+" 7000"); out != "six\n" {
		t.Fatalf("over IPv6 to %s: %q", ip6, out)
	}
}

// TestLiveConnect: a running container connected to a second network gets
// an interface on it and resolves its containers' names at once; after
// disconnect both are gone.
func TestLiveConnect(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "dp-l1")
	e.must("network", "create", "dp-l2")
	e.must("run", "-d", "--name", "dp-srv", "--network", "dp-l2", "busybox", "sleep", "600")
	e.must("run", "-d", "--name", "dp-cl", "--network", "dp-l1", "busybox", "sleep", "600")
	if r := e.run("exec", "dp-cl", "ping", "-c1", "-W1", "dp-srv"); r.code == 0 {
		t.Fatalf("dp-srv reachable before connect: %s", r)
	}
	e.must("network", "connect", "dp-l2", "dp-cl")
	eventually(t, 10*time.Second, "dp-srv by name after connect", func() bool {
		return e.run("exec", "dp-cl", "ping", "-c1", "-W1", "dp-srv").code == 0
	})
	e.must("network", "disconnect", "dp-l2", "dp-cl")
	if out := e.must("exec", "dp-cl", "ls", "/sys/class/net"); strings.Contains(out, "eth1") {
		t.Fatalf("eth1 after disconnect: %q", out)
	}
}

// TestMonitorKillLeavesNothing: after kill -9 of a container's monitor,
// its reconciliation removes its veth and frees its published port.
func TestMonitorKillLeavesNothing(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "dp-k", "-p", "18582:80", "busybox", "sleep", "600")
	id, nid := e.inspect("dp-k", "{{.Id}}"), e.inspect("dp-k", "{{.NetworkSettings.Networks.bridge.NetworkID}}")
	veth := "/sys/class/net/" + hostIfName(id, nid)
	if _, err := os.Stat(veth); err != nil {
		t.Fatalf("host veth: %v", err)
	}
	if ports := guardedPorts(t, e); !ports[hostIfName(id, nid)] {
		t.Errorf("the container's port %s is not guarded: %v", hostIfName(id, nid), ports)
	}
	if err := unix.Kill(monitorPid(t, e, "dp-k"), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "dp-k seen exited", func() bool { return e.inspect("dp-k", "{{.State.Status}}") == "exited" })
	e.must("rm", "dp-k") // reconciles it
	// The kernel deletes the veth with the namespace, in the background.
	eventually(t, 10*time.Second, "the host veth gone after the monitor's death and rm", func() bool {
		_, err := os.Stat(veth)
		return os.IsNotExist(err)
	})
	ln, err := net.Listen("tcp", "0.0.0.0:18582")
	if err != nil {
		t.Fatalf("port still held: %v", err)
	}
	defer ln.Close()
	// Nothing diverts the port any more (no DNAT element, no socket
	// redirect entry): a connection to 127.0.0.1 reaches the listener.
	c, err := net.DialTimeout("tcp", "127.0.0.1:18582", 5*time.Second)
	if err != nil {
		t.Fatalf("connecting to the freed port: %v", err)
	}
	defer c.Close()
	if peer := c.RemoteAddr().String(); peer != "127.0.0.1:18582" {
		t.Fatalf("connected to %s", peer)
	}
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	a, err := ln.Accept()
	if err != nil {
		t.Fatalf("the host's listener got no connection: %v", err)
	}
	// Reset, not closed: a TIME-WAIT on the listener's side would hold
	// the port against the next run's reservation (no SO_REUSEADDR).
	a.(*net.TCPConn).SetLinger(0)
	a.Close()
	if got := e.must("network", "inspect", "-f", "{{len .Containers}}", "bridge"); got != "0\n" {
		t.Fatalf("addresses left: %s", got)
	}
	if ports := guardedPorts(t, e); len(ports) != 0 {
		t.Fatalf("guards left: %v", ports)
	}
}
