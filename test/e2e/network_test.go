package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The network tests here need no traffic: they hold the network service
// (records, addresses, /etc files, flags) to Docker's behaviour. Traffic
// between host and containers is network_dataplane_test.go's.

// TestNetworkCommands: create, ls, inspect, a container on the network
// with an alias, rm refused while it runs, connect and disconnect of a
// created container, rm.
func TestNetworkCommands(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.must("network", "create", "--subnet", "10.201.0.0/24", "--label", "a=b", "nc-app"))
	if len(id) != 64 {
		t.Fatalf("network ID %q", id)
	}
	ls := e.must("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}")
	for _, want := range []string{"bridge bridge local", "host host local", "none null local", "nc-app bridge local"} {
		if !strings.Contains(ls, want+"\n") {
			t.Errorf("network ls lacks %q:\n%s", want, ls)
		}
	}
	e.must("run", "-d", "--name", "nc-db", "--network", "nc-app", "--network-alias", "database", "busybox", "sleep", "600")
	ctrID := e.inspect("nc-db", "{{.Id}}")
	got := e.inspect("nc-db", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}/{{$v.IPPrefixLen}} {{$v.Gateway}} {{$v.MacAddress}} {{$v.Aliases}}{{end}}")
	if want := "nc-app 10.201.0.2/24 10.201.0.1 02:42:0a:c9:00:02 [database " + ctrID[:12] + "]"; got != want {
		t.Errorf("networks of nc-db: %q, want %q", got, want)
	}
	if got := e.must("network", "inspect", "-f", "{{range $id, $c := .Containers}}{{$id}} {{$c.Name}} {{$c.IPv4Address}}{{end}}", "nc-app"); got != ctrID+" nc-db 10.201.0.2/24\n" {
		t.Errorf("network inspect Containers: %q", got)
	}
	if r := e.run("network", "rm", "nc-app"); r.code != 1 || !strings.Contains(r.stderr, "has active endpoints") {
		t.Errorf("rm of a network in use: %s", r)
	}
	if ps := e.must("ps", "--filter", "network=nc-app", "--format", "{{.Names}} {{.Networks}}"); ps != "nc-db nc-app\n" {
		t.Errorf("ps --filter network: %q", ps)
	}

	// A created container: connect records, start attaches, both networks.
	e.must("network", "create", "--subnet", "10.202.0.0/24", "nc-other")
	e.must("create", "--name", "nc-c", "--network", "nc-app", "busybox", "sleep", "600")
	e.must("network", "connect", "--alias", "web", "--ip", "10.202.0.77", "nc-other", "nc-c")
	if got := e.inspect("nc-c", "{{len .NetworkSettings.Networks}} {{(index .NetworkSettings.Networks \"nc-other\").IPAMConfig.IPv4Address}}"); got != "2 10.202.0.77" {
		t.Errorf("created container after connect: %q", got)
	}
	e.must("start", "nc-c")
	if got := e.inspect("nc-c", "{{(index .NetworkSettings.Networks \"nc-app\").IPAddress}} {{(index .NetworkSettings.Networks \"nc-other\").IPAddress}}"); got != "10.201.0.3 10.202.0.77" {
		t.Errorf("addresses of nc-c: %q", got)
	}
	e.must("network", "disconnect", "nc-other", "nc-c")
	if got := e.must("network", "inspect", "-f", "{{len .Containers}}", "nc-other"); got != "0\n" {
		t.Errorf("nc-other after disconnect: %q containers", got)
	}
	// Its other network keeps it.
	if got := e.must("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}} {{end}}", "nc-app"); !strings.Contains(got, "nc-c 10.201.0.3/24") {
		t.Errorf("nc-app after nc-c left nc-other: %q", got)
	}
	e.must("rm", "-f", "nc-db", "nc-c")
	if got := e.must("network", "rm", "nc-app", "nc-other"); got != "nc-app\nnc-other\n" {
		t.Errorf("network rm: %q", got)
	}
	if r := e.run("network", "inspect", "nc-app"); r.code != 1 || !strings.Contains(r.stderr, "network nc-app not found") {
		t.Errorf("inspect after rm: %s", r)
	}
}

// TestNetworkConcurrentRuns: 30 `run -d` from three concurrent streams on
// one network get 30 distinct addresses; after rm the first address is
// handed out again.
func TestNetworkConcurrentRuns(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "--subnet", "10.203.0.0/24", "nc-many")
	var wg sync.WaitGroup
	errs := make(chan string, 30)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if r := e.run("run", "-d", "--name", fmt.Sprintf("nc-many-%d-%d", w, i), "--network", "nc-many", "busybox", "sleep", "600"); r.code != 0 {
					errs <- r.String()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Fatal(msg)
	}
	ips := strings.Fields(e.must("network", "inspect", "-f", "{{range .Containers}}{{.IPv4Address}} {{end}}", "nc-many"))
	seen := map[string]bool{}
	for _, ip := range ips {
		if seen[ip] {
			t.Errorf("%s given twice", ip)
		}
		seen[ip] = true
	}
	if len(seen) != 30 {
		t.Fatalf("%d addresses for 30 containers: %v", len(seen), ips)
	}
	ids := strings.Fields(e.must("ps", "-aq"))
	e.must(append([]string{"rm", "-f"}, ids...)...)
	if got := e.must("network", "inspect", "-f", "{{len .Containers}}", "nc-many"); got != "0\n" {
		t.Fatalf("%s containers left after rm", got)
	}
	// The removed containers' monitors give their addresses back just
	// after rm returns (the kernel's unpublishing comes first): the first
	// address is soon handed out again.
	attempt := 0
	eventually(t, 15*time.Second, "10.203.0.2 given again after rm", func() bool {
		attempt++
		name := fmt.Sprintf("nc-again-%d", attempt)
		e.must("run", "-d", "--name", name, "--network", "nc-many", "busybox", "sleep", "600")
		if e.inspect(name, `{{(index .NetworkSettings.Networks "nc-many").IPAddress}}`) == "10.203.0.2" {
			return true
		}
		e.must("rm", "-f", name)
		return false
	})
}

// TestNetworkFailedStartLeavesNothing: a start refused for its address
// (in use, outside the subnet) leaves no allocation; a stopped container
// holds none either.
func TestNetworkFailedStartLeavesNothing(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "--subnet", "10.204.0.0/24", "nc-fail")
	e.must("run", "-d", "--name", "nc-first", "--network", "nc-fail", "--ip", "10.204.0.9", "busybox", "sleep", "600")
	for _, tc := range []struct{ ip, msg string }{
		{"10.204.0.9", "Address already in use"},
		{"10.205.0.9", "Invalid address 10.205.0.9: It does not belong to any of this network's subnets"},
	} {
		r := e.run("run", "--name", "nc-bad", "--network", "nc-fail", "--ip", tc.ip, "busybox", "true")
		if r.code != 125 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("--ip %s: %s", tc.ip, r)
		}
		if got := e.inspect("nc-bad", "{{.State.Status}} {{len .NetworkSettings.Ports}} {{(index .NetworkSettings.Networks \"nc-fail\").IPAddress}}"); got != "created 0" {
			t.Errorf("failed container: %q", got)
		}
		e.must("rm", "nc-bad")
	}
	if got := e.must("network", "inspect", "-f", "{{range .Containers}}{{.Name}} {{.IPv4Address}};{{end}}", "nc-fail"); got != "nc-first 10.204.0.9/24;\n" {
		t.Errorf("allocations after failed starts: %q", got)
	}
	e.must("stop", "-t", "0", "nc-first")
	if got := e.must("network", "inspect", "-f", "{{len .Containers}}", "nc-fail"); got != "0\n" {
		t.Errorf("a stopped container holds %s addresses", got)
	}
	if got := e.inspect("nc-first", `{{.NetworkSettings.IPAddress}}|{{(index .NetworkSettings.Networks "nc-fail").IPAddress}}|{{(index .NetworkSettings.Networks "nc-fail").IPAMConfig.IPv4Address}}`); got != "||10.204.0.9" {
		t.Errorf("stopped container's settings: %q", got)
	}
}

// TestNetworkCrashReleases: the addresses of a container whose monitor
// was killed with -9 are released by its reconciliation and by system
// restore's network sweep.
func TestNetworkCrashReleases(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "--subnet", "10.206.0.0/24", "nc-crash")
	for _, name := range []string{"nc-k1", "nc-k2"} {
		e.must("run", "-d", "--name", name, "--network", "nc-crash", "busybox", "sleep", "600")
		if err := unix.Kill(monitorPid(t, e, name), unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, name+" seen exited", func() bool { return e.inspect(name, "{{.State.Status}}") == "exited" })
	}
	if got := e.must("network", "inspect", "-f", "{{len .Containers}}", "nc-crash"); got != "2\n" {
		t.Fatalf("before reconciliation: %s", got)
	}
	e.must("stop", "nc-k1") // reconciles nc-k1
	if got := e.must("network", "inspect", "-f", "{{range .Containers}}{{.Name}}{{end}}", "nc-crash"); got != "nc-k2\n" {
		t.Fatalf("after nc-k1's reconciliation: %q", got)
	}
	e.must("system", "restore")
	if got := e.must("network", "inspect", "-f", "{{len .Containers}}", "nc-crash"); got != "0\n" {
		t.Fatalf("after system restore: %s", got)
	}
}

// TestNetworkEtcFiles: /etc/hosts and resolv.conf on the default bridge,
// --add-host host-gateway, legacy --link, and container:<name>.
func TestNetworkEtcFiles(t *testing.T) {
	e := newEnv(t)
	gw := strings.TrimSpace(e.must("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "bridge"))
	if _, err := netip.ParseAddr(gw); err != nil {
		t.Fatalf("default bridge gateway %q", gw)
	}
	if got := e.must("run", "--rm", "--add-host", "hg:host-gateway", "busybox", "grep", "-w", "hg", "/etc/hosts"); got != gw+"\thg\n" {
		t.Errorf("host-gateway: %q, want %s", got, gw)
	}
	if rc := e.must("run", "--rm", "busybox", "cat", "/etc/resolv.conf"); strings.Contains(rc, "127.0.0.11") || !strings.Contains(rc, "nameserver ") {
		t.Errorf("resolv.conf on the default bridge:\n%s", rc)
	}
	if rc := e.must("run", "--rm", "--dns", "10.3.3.3", "--dns-search", "example.org", "--dns-option", "ndots:2", "busybox", "cat", "/etc/resolv.conf"); rc != "search example.org\nnameserver 10.3.3.3\noptions ndots:2\n" {
		t.Errorf("resolv.conf with --dns flags:\n%s", rc)
	}
	e.must("run", "-d", "--name", "nc-db", "busybox", "sleep", "600")
	dbIP, dbID := e.inspect("nc-db", "{{.NetworkSettings.IPAddress}}"), e.inspect("nc-db", "{{.Id}}")
	if got := e.must("run", "--rm", "--link", "nc-db:dbalias", "busybox", "grep", "-w", "dbalias", "/etc/hosts"); got != dbIP+"\tdbalias "+dbID[:12]+" nc-db\n" {
		t.Errorf("--link: %q", got)
	}
	e.must("rename", "nc-db", "nc-db2") // links follow the name it has now
	if got := e.must("run", "--rm", "--link", "nc-db2", "busybox", "grep", "-w", "nc-db2", "/etc/hosts"); got != dbIP+"\tnc-db2 "+dbID[:12]+"\n" {
		t.Errorf("--link after rename: %q", got)
	}
	e.must("rename", "nc-db2", "nc-db")
	if r := e.run("run", "--rm", "--link", "nc-nosuch:x", "busybox", "true"); r.code != 125 {
		t.Errorf("--link to a missing container: %s", r)
	}
	want := e.must("exec", "nc-db", "readlink", "/proc/self/ns/net")
	if got := e.must("run", "--rm", "--network", "container:nc-db", "busybox", "readlink", "/proc/self/ns/net"); got != want {
		t.Errorf("container:nc-db: namespace %q, want %q", got, want)
	}
	// It sees nc-db's /etc files, as in Docker.
	if got := e.must("run", "--rm", "--network", "container:nc-db", "busybox", "sh", "-c", "cat /etc/hostname; grep -c "+dbIP+" /etc/hosts"); got != dbID[:12]+"\n1\n" {
		t.Errorf("container:nc-db's /etc files: %q", got)
	}
	if r := e.run("run", "--rm", "--network", "container:nc-db", "-p", "80", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "conflicting options: port publishing and the container type network mode") {
		t.Errorf("container: mode with -p: %s", r)
	}
	if got := e.inspect("nc-db", "{{.HostConfig.NetworkMode}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"); got != "bridge bridge" {
		t.Errorf("default network mode: %q", got)
	}
}

// TestPublishedPortsRecorded: -p and -P as docker records and shows them
// (ps PORTS, port, inspect), and nothing once the container stopped.
func TestPublishedPortsRecorded(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "nc-web", "-p", "127.0.0.1:18080:80", "-p", "18081:81/udp", "--expose", "90", "-P", "busybox", "sleep", "600")
	port := e.must("port", "nc-web")
	lines := strings.Split(strings.TrimSpace(port), "\n")
	if len(lines) != 3 || lines[0] != "80/tcp -> 127.0.0.1:18080" || lines[1] != "81/udp -> 0.0.0.0:18081" || !strings.HasPrefix(lines[2], "90/tcp -> 0.0.0.0:") {
		t.Errorf("port:\n%s", port)
	}
	ps := e.must("ps", "--format", "{{.Ports}}", "--filter", "name=nc-web")
	if !strings.Contains(ps, "127.0.0.1:18080->80/tcp") || !strings.Contains(ps, "0.0.0.0:18081->81/udp") {
		t.Errorf("PORTS: %q", ps)
	}
	if got := e.inspect("nc-web", "{{json .HostConfig.PortBindings}} {{.HostConfig.PublishAllPorts}}"); got != `{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"18080"}],"81/udp":[{"HostIp":"","HostPort":"18081"}]} true` {
		t.Errorf("PortBindings: %s", got)
	}
	if r := e.run("ps", "-q", "--filter", "publish=80"); strings.TrimSpace(r.stdout) == "" {
		t.Errorf("ps --filter publish=80 finds nothing: %s", r)
	}
	e.must("stop", "-t", "0", "nc-web")
	if got := e.inspect("nc-web", "{{json .NetworkSettings.Ports}}"); got != "{}" {
		t.Errorf("Ports of a stopped container: %s", got)
	}
	for _, tc := range []struct{ p, msg string }{
		{"abc", "invalid containerPort: abc"},
		{"1.2.3:80:80", "invalid IP address: 1.2.3"},
		{"80/icmp", "invalid proto: icmp"},
	} {
		if r := e.run("run", "--rm", "-p", tc.p, "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("-p %s: %s", tc.p, r)
		}
	}
}

// TestNetworkIPv6: a dual-stack user network gives each container an
// IPv6 address beside its IPv4 one, --ip6 is honoured, and a port
// published on every address shows [::] too.
func TestNetworkIPv6(t *testing.T) {
	e := newEnv(t)
	e.must("network", "create", "--ipv6", "--subnet", "fd00:b0::/64", "--subnet", "10.211.0.0/24", "nc-v6")
	e.must("run", "-d", "--name", "nc-v6a", "--network", "nc-v6", "--ip6", "fd00:b0::99", "-p", "18443:443", "busybox", "sleep", "600")
	e.must("run", "-d", "--name", "nc-v6b", "--network", "nc-v6", "busybox", "sleep", "600")
	for name, want := range map[string]string{"nc-v6a": "10.211.0.2 fd00:b0::99/64 fd00:b0::1", "nc-v6b": "10.211.0.3 fd00:b0::2/64 fd00:b0::1"} {
		if got := e.inspect(name, "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}/{{.GlobalIPv6PrefixLen}} {{.IPv6Gateway}}{{end}}"); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if got := e.inspect("nc-v6a", "{{json .NetworkSettings.Ports}}"); got != `{"443/tcp":[{"HostIp":"0.0.0.0","HostPort":"18443"},{"HostIp":"::","HostPort":"18443"}]}` {
		t.Errorf("Ports: %s", got)
	}
	if got := e.must("network", "inspect", "-f", `{{range .Containers}}{{.Name}}={{.IPv6Address}} {{end}}`, "nc-v6"); !strings.Contains(got, "nc-v6a=fd00:b0::99/64") {
		t.Errorf("network inspect: %q", got)
	}
	if r := e.run("run", "--rm", "--network", "nc-v6", "--ip6", "fd00:c0::1", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "does not belong to any of this network's subnets") {
		t.Errorf("--ip6 outside: %s", r)
	}
}
