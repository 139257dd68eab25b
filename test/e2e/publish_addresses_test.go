package e2e

// Where published ports go: daemon.json's "ip" (dockerd's --ip) and
// berth's "publish-addresses", and a network's host_binding_ipv4.

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// useConfig gives the test's berth a daemon.json of its own.
func useConfig(t *testing.T, e *env, body string) string {
	t.Helper()
	cfg := filepath.Join(e.dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	e.extra = append(e.extra, "BERTH_CONFIG_FILE="+cfg)
	return cfg
}

// refused checks that nothing answers a TCP connection to addr: not
// translated to a container, and no host socket listening there.
func refused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("%s accepted a connection; it must not be published there", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("%s: %v, want connection refused", addr, err)
	}
}

// TestPublishAddresses: with publish-addresses, a port published without
// an address (or on 0.0.0.0) is published on the listed addresses only
// (port, ps and traffic agree; another host address of the machine, the
// bridge's, gets nothing), an address that is not listed is refused with
// exit 125 and leaves nothing, and the mode holds through a crash and
// system restore. A changed file takes effect at the container's next
// start.
func TestPublishAddresses(t *testing.T) {
	e := newEnv(t)
	cfg := useConfig(t, e, `{"publish-addresses": ["127.0.0.1"]}`)
	e.must("run", "-d", "--name", "pa-web", "--restart", "always", "-p", "18590:80", "-p", "0.0.0.0:18591:81", "busybox", "sh", "-c", httpdCmd)
	if got := e.must("port", "pa-web"); got != "80/tcp -> 127.0.0.1:18590\n81/tcp -> 127.0.0.1:18591\n" {
		t.Errorf("port: %q", got)
	}
	if got := e.must("ps", "--filter", "name=pa-web", "--format", "{{.Ports}}"); got != "127.0.0.1:18590->80/tcp, 127.0.0.1:18591->81/tcp\n" {
		t.Errorf("ps: %q", got)
	}
	if got := e.inspect("pa-web", "{{json .HostConfig.PortBindings}}"); got != `{"80/tcp":[{"HostIp":"","HostPort":"18590"}],"81/tcp":[{"HostIp":"0.0.0.0","HostPort":"18591"}]}` {
		t.Errorf("PortBindings (as given): %s", got)
	}
	gw := strings.TrimSpace(e.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "bridge"))
	check := func(when string) {
		t.Helper()
		if body := httpGet(t, "127.0.0.1:18590"); !strings.Contains(body, "hello-from-berth") {
			t.Fatalf("%s: listed address: %q", when, body)
		}
		refused(t, net.JoinHostPort(gw, "18590"))
	}
	check("after run")

	// Not listed: refused before anything is made.
	for _, p := range []string{"192.0.2.99:18592:80", "[2001:db8::1]:18592:80"} {
		r := e.run("run", "-d", "--name", "pa-bad", "-p", p, "busybox", "sleep", "600")
		if r.code != 125 || !strings.Contains(r.stderr, "publish-addresses in "+cfg+" allows only 127.0.0.1") {
			t.Errorf("-p %s: %s", p, r)
		}
		if got := e.run("ps", "-aq", "--filter", "name=pa-bad"); got.stdout != "" {
			t.Errorf("-p %s left a container: %q", p, got.stdout)
		}
	}
	if got := e.must("network", "inspect", "-f", "{{len .Containers}}", "bridge"); got != "1\n" {
		t.Errorf("addresses after the refused runs: %s", got)
	}

	// A crash and system restore (a reboot's stand-in) publish the same.
	if err := syscall.Kill(monitorPid(t, e, "pa-web"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the crash noticed", func() bool { return strings.TrimSpace(e.must("ps", "-q")) == "" })
	e.must("system", "restore")
	if got := e.must("port", "pa-web"); got != "80/tcp -> 127.0.0.1:18590\n81/tcp -> 127.0.0.1:18591\n" {
		t.Errorf("port after restore: %q", got)
	}
	check("after restore")

	// Without the key, the next start publishes on every address again.
	useConfig(t, e, `{}`)
	e.must("restart", "-t", "0", "pa-web")
	if got := e.must("port", "pa-web", "80"); got != "0.0.0.0:18590\n" {
		t.Errorf("port after the key went: %q", got)
	}
	if body := httpGet(t, net.JoinHostPort(gw, "18590")); !strings.Contains(body, "hello-from-berth") {
		t.Errorf("bridge address after the key went: %q", body)
	}
}

// TestPublishAddressesSeveral: every listed address of the container's
// families gets the port, the same port on each (also one picked).
func TestPublishAddressesSeveral(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "pa-net")
	gw := strings.TrimSpace(e.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "pa-net"))
	useConfig(t, e, `{"publish-addresses": ["127.0.0.1", "`+gw+`"]}`)
	e.must("run", "-d", "--name", "pa-two", "--network", "pa-net", "-p", "18593:80", "-p", "81", "busybox", "sh", "-c", httpdCmd)
	lines := strings.Split(strings.TrimSpace(e.must("port", "pa-two")), "\n")
	if len(lines) != 4 || lines[0] != "80/tcp -> 127.0.0.1:18593" || lines[1] != "80/tcp -> "+gw+":18593" {
		t.Fatalf("port: %q", lines)
	}
	p1, p2 := strings.TrimPrefix(lines[2], "81/tcp -> 127.0.0.1:"), strings.TrimPrefix(lines[3], "81/tcp -> "+gw+":")
	if p1 == lines[2] || p1 != p2 {
		t.Errorf("a picked port differs between the addresses: %q", lines[2:])
	}
	for _, a := range []string{"127.0.0.1:18593", gw + ":18593"} {
		if body := httpGet(t, a); !strings.Contains(body, "hello-from-berth") {
			t.Errorf("%s: %q", a, body)
		}
	}
}

// TestDefaultBindIP: daemon.json's "ip" (dockerd's --ip) is the default
// bridge's host_binding_ipv4, as Docker shows and applies it, and not
// user networks' default; --default-bind-ip overrides the file; a
// network's own host_binding_ipv4 and an explicit -p address win.
func TestDefaultBindIP(t *testing.T) {
	e := newEnv(t)
	useConfig(t, e, `{"ip": "127.0.0.1"}`)
	if got := e.must("network", "inspect", "-f", `{{index .Options "com.docker.network.bridge.host_binding_ipv4"}}`, "bridge"); got != "127.0.0.1\n" {
		t.Errorf("bridge's host_binding_ipv4: %q", got)
	}
	e.must("run", "-d", "--name", "di-a", "-p", "18594:80", "-p", "0.0.0.0:18595:81", "busybox", "sleep", "600")
	if got := e.must("port", "di-a"); got != "80/tcp -> 127.0.0.1:18594\n81/tcp -> 0.0.0.0:18595\n" {
		t.Errorf("port di-a: %q", got)
	}
	if got := e.must("ps", "--filter", "name=di-a", "--format", "{{.Ports}}"); got != "127.0.0.1:18594->80/tcp, 0.0.0.0:18595->81/tcp\n" {
		t.Errorf("ps di-a: %q", got)
	}
	if got := e.inspect("di-a", "{{json .NetworkSettings.Ports}} {{json .HostConfig.PortBindings}}"); got != `{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18594"}],"81/tcp":[{"HostIp":"0.0.0.0","HostPort":"18595"}]} {"80/tcp":[{"HostIp":"","HostPort":"18594"}],"81/tcp":[{"HostIp":"0.0.0.0","HostPort":"18595"}]}` {
		t.Errorf("inspect di-a: %s", got)
	}
	e.must("--default-bind-ip", "0.0.0.0", "run", "-d", "--name", "di-b", "-p", "18596:80", "busybox", "sleep", "600")
	if got := e.must("port", "di-b"); got != "80/tcp -> 0.0.0.0:18596\n" {
		t.Errorf("port di-b (--default-bind-ip 0.0.0.0): %q", got)
	}
	e.must("network", "create", "di-user")
	e.must("network", "create", "--opt", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1", "di-bound")
	e.must("run", "-d", "--name", "di-c", "--network", "di-user", "-p", "18597:80", "busybox", "sleep", "600")
	e.must("run", "-d", "--name", "di-d", "--network", "di-bound", "-p", "18598:80", "-p", "0.0.0.0:18599:81", "busybox", "sleep", "600")
	if got := e.must("port", "di-c"); got != "80/tcp -> 0.0.0.0:18597\n" {
		t.Errorf("port di-c (user network): %q", got)
	}
	if got := e.must("port", "di-d"); got != "80/tcp -> 127.0.0.1:18598\n81/tcp -> 0.0.0.0:18599\n" {
		t.Errorf("port di-d (host_binding_ipv4): %q", got)
	}
	r := e.run("network", "create", "--opt", "com.docker.network.bridge.host_binding_ipv4=bogus", "di-bad")
	if r.code != 1 || !strings.Contains(r.stderr, "failed to parse com.docker.network.bridge.host_binding_ipv4 value: bogus") {
		t.Errorf("bad host_binding_ipv4: %s", r)
	}
	r = e.run("--default-bind-ip", "nope", "run", "--rm", "-p", "18600:80", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, `--default-bind-ip "nope" is not an IP address`) {
		t.Errorf("bad --default-bind-ip: %s", r)
	}
}
