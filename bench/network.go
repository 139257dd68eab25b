package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/network/dataplane"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// engineCLI runs one engine's commands: berth with the bench's own root,
// or the docker CLI (whichever daemon DOCKER_HOST names).
type engineCLI struct {
	name string
	run  func(args ...string) (string, error)
}

func (c *config) berthCLI() engineCLI { return engineCLI{"berth", c.b} }

func dockerCLI() engineCLI {
	return engineCLI{"Docker", func(args ...string) (string, error) {
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}}
}

// networkRows measures issue 11's figures: the bridge's cost on `run
// --rm`, TCP throughput through a published port and straight to the
// container, name lookups among 100 containers, and a 1,000-port range.
// Docker is measured only when its daemon has its default bridge (the
// bench's usual private dockerd runs with --bridge=none).
func (c *config) networkRows(dockerOK bool) error {
	berth := c.berthCLI()
	if _, err := berth.run("run", "--rm", "--network", "bridge", "busybox", "true"); err != nil {
		fmt.Fprintf(os.Stderr, "bench: berth's default bridge does not work (%v); network rows skipped\n", err)
		return nil
	}
	dockerNet := dockerOK && exec.Command("docker", "network", "inspect", "bridge").Run() == nil
	if dockerOK && !dockerNet {
		fmt.Fprintln(os.Stderr, "bench: Docker has no bridge network (started with --bridge=none?): its network columns are left empty")
	}
	engines := []engineCLI{berth}
	if dockerNet {
		engines = append(engines, dockerCLI())
	}
	blast := filepath.Join(c.work, "tcpblast")
	build := exec.Command("go", "build", "-o", blast, "./bench/tcpblast")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build tcpblast: %v\n%s", err, out)
	}

	// 1. run --rm on the bridge and without a network, in turns.
	var fns []func() error
	for _, e := range engines {
		for _, mode := range []string{"bridge", "none"} {
			fns = append(fns, func() error {
				_, err := e.run("run", "--rm", "--network", mode, "busybox", "true")
				return err
			})
		}
	}
	meds, samples := c.mediansAndSamples(fns...)
	row("`run --rm busybox true` on the default bridge", meds[0], meds[1], "berth, --network none")
	// The cost is the median of each round's bridge − none: the two
	// medians' difference swings by milliseconds with the machine's load.
	if !dockerNet || meds[2] == 0 || meds[3] == 0 {
		fmt.Printf("| the bridge's cost (bridge − none, paired per round) | %s | | |\n", ms(pairedCost(samples[0], samples[1])))
	} else {
		row("`run --rm busybox true` on the default bridge", meds[0], meds[2], "Docker, bridge")
		fmt.Printf("| Docker: `run --rm busybox true`, bridge / none | %s / %s | | |\n", ms(meds[2]), ms(meds[3]))
		fmt.Printf("| the bridge's cost (bridge − none, paired per round) | %s | %s (Docker) | |\n", ms(pairedCost(samples[0], samples[1])), ms(pairedCost(samples[2], samples[3])))
	}

	// 2. TCP throughput: host loopback, a port published on 127.0.0.1,
	// and the container's own address, in turns (load that comes and
	// goes lands on every path alike).
	if err := c.throughputRows(engines, blast); err != nil {
		return err
	}

	// 3. 100 containers on one network: start time and lookups.
	type hundred struct {
		start  time.Duration
		lookup int
	}
	var hs []hundred
	for _, e := range engines {
		start, lookup, err := c.hundredOnANetwork(e, blast)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		hs = append(hs, hundred{start, lookup})
	}
	if len(hs) > 1 && hs[1].lookup > 0 {
		row("100 × `run -d --network benchnet busybox sleep`", hs[0].start, hs[1].start, "Docker")
		fmt.Printf("| name lookup among them (median of 150) | %d µs | %d µs (Docker) | %.2f |\n", hs[0].lookup, hs[1].lookup, float64(hs[0].lookup)/float64(hs[1].lookup))
	} else {
		row("100 × `run -d --network benchnet busybox sleep`", hs[0].start, 0, "")
		fmt.Printf("| name lookup among them (median of 150) | %d µs | | |\n", hs[0].lookup)
	}

	// 4. A 1,000-port range: start time, processes and memory it costs.
	for _, e := range engines {
		d, procs, kib, err := c.portRange(e)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			continue
		}
		fmt.Printf("| %s: `run -d -p 30000-30999:30000-30999` | %s | %d processes, %.1f MiB RSS | |\n", e.name, ms(d), procs, float64(kib)/1024)
	}
	return nil
}

const blastBytes = "4294967296"

// blastRounds is how many 4 GiB transfers each path gets, in turns.
const blastRounds = 3

// blastTarget is one receiver the rounds send to.
type blastTarget struct {
	label string
	addr  string
	rates []float64
	peer  string // the client address the receiver saw, last transfer
}

func (c *config) throughputRows(engines []engineCLI, blast string) error {
	recv := exec.Command(blast, "recv", "-l", "127.0.0.1:47099")
	if err := recv.Start(); err != nil {
		return err
	}
	defer func() { recv.Process.Kill(); recv.Wait() }()
	loop := &blastTarget{label: "host loopback", addr: "127.0.0.1:47099"}
	targets := []*blastTarget{loop}
	hostIP := hostAddress()
	type engineTargets struct {
		e                  engineCLI
		label              string
		pub, direct, other *blastTarget
	}
	var ets []engineTargets
	// Each engine's default bridge (MTU 1500, Docker's default), and a
	// network made with Docker's MTU option at 65535, the MTU of the
	// host's loopback.
	variants := []struct{ suffix, network, label string }{
		{"", "bridge", ""},
		{"-mtu", "benchmtu", ", network with mtu 65535"},
	}
	i := 0
	for _, e := range engines {
		for _, v := range variants {
			name := "bench-blast-" + strings.ToLower(e.name) + v.suffix
			e.run("rm", "-f", name)
			if v.network != "bridge" {
				e.run("network", "rm", v.network)
				if _, err := e.run("network", "create", "--opt", "com.docker.network.driver.mtu=65535", v.network); err != nil {
					fmt.Fprintln(os.Stderr, "bench:", err)
					continue
				}
				// After the container (deferred calls run last first):
				// a network with a container on it is not removed.
				defer e.run("network", "rm", v.network)
			}
			defer e.run("rm", "-f", name)
			// Published twice: on 127.0.0.1 (measured) and on every
			// address, to see the client address a connection to the
			// host's own non-loopback address arrives with.
			port, allPort := 47100+2*i, 47101+2*i
			i++
			if _, err := e.run("run", "-d", "--name", name, "--network", v.network,
				"-p", fmt.Sprintf("127.0.0.1:%d:5001", port), "-p", fmt.Sprintf("%d:5001", allPort),
				"-v", blast+":/tcpblast:ro", "busybox", "/tcpblast", "recv", "-l", ":5001"); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				continue
			}
			ip, err := e.run("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				continue
			}
			et := engineTargets{e: e, label: e.name + v.label,
				pub:    &blastTarget{label: e.name + v.label + ": TCP host → 127.0.0.1-published port (4 GiB)", addr: fmt.Sprintf("127.0.0.1:%d", port)},
				direct: &blastTarget{label: e.name + v.label + ": TCP host → container address (4 GiB)", addr: strings.TrimSpace(ip) + ":5001"},
			}
			targets = append(targets, et.pub, et.direct)
			if hostIP != "" {
				et.other = &blastTarget{addr: fmt.Sprintf("%s:%d", hostIP, allPort)}
			}
			ets = append(ets, et)
		}
	}
	for range blastRounds {
		for _, t := range targets {
			out, err := sendOnce(blast, t.addr, blastBytes)
			if err != nil {
				return err
			}
			f := strings.Fields(out)
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil || len(f) < 4 {
				return fmt.Errorf("tcpblast said %q", out)
			}
			t.rates = append(t.rates, v)
			t.peer = f[3]
		}
	}
	lm := medianRate(loop.rates)
	for _, et := range ets {
		for _, t := range []*blastTarget{et.pub, et.direct} {
			m := medianRate(t.rates)
			fmt.Printf("| %s | %.0f MB/s | %.0f MB/s (host loopback) | %.2f |\n", t.label, m, lm, m/lm)
		}
		fmt.Printf("| %s: client address seen through 127.0.0.1:%s | %s | | |\n", et.label, port(et.pub.addr), host(et.pub.peer))
		if et.other != nil {
			peer := "(failed)"
			if out, err := sendOnce(blast, et.other.addr, "1048576"); err == nil {
				if f := strings.Fields(out); len(f) >= 4 {
					peer = host(f[3])
				}
			}
			fmt.Printf("| %s: client address seen through %s (sent from the host) | %s | | |\n", et.label, et.other.addr, peer)
		}
	}
	fmt.Printf("| (TCP: medians of %d transfers per path, in turns; all: %s) | | | |\n", blastRounds, rateList(targets))
	return nil
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
func host(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }

func medianRate(r []float64) float64 {
	if len(r) == 0 {
		return 0
	}
	s := slices.Clone(r)
	slices.Sort(s)
	return s[len(s)/2]
}

func rateList(ts []*blastTarget) string {
	var parts []string
	for _, t := range ts {
		var rs []string
		for _, r := range t.rates {
			rs = append(rs, fmt.Sprintf("%.0f", r))
		}
		parts = append(parts, t.addr+" "+strings.Join(rs, "/"))
	}
	return strings.Join(parts, "; ")
}

// hostAddress is the host's first global IPv4 address on an interface
// that is not a bridge of berth or Docker (the one other hosts would
// connect to), or "".
func hostAddress() string {
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagUp == 0 {
			continue
		}
		if _, err := os.Stat("/sys/class/net/" + ifc.Name + "/bridge"); err == nil {
			continue
		}
		if _, err := os.Stat("/sys/class/net/" + ifc.Name + "/brport"); err == nil {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	return ""
}

func sendOnce(blast, addr, bytes string) (string, error) {
	var out string
	var err error
	// The receiver may still be coming up.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var b []byte
		b, err = exec.Command(blast, "send", "-c", addr, "-n", bytes).CombinedOutput()
		if out = string(b); err == nil {
			return out, nil
		}
	}
	return out, fmt.Errorf("send to %s: %v: %s", addr, err, out)
}

func (c *config) hundredOnANetwork(e engineCLI, blast string) (time.Duration, int, error) {
	const n = 100
	net := "benchnet-" + strings.ToLower(e.name)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bn-%s-%d", strings.ToLower(e.name), i)
	}
	cleanup := func() {
		e.run(append([]string{"rm", "-f"}, names...)...)
		e.run("network", "rm", net)
	}
	cleanup()
	defer cleanup()
	if _, err := e.run("network", "create", net); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	for _, name := range names {
		if _, err := e.run("run", "-d", "--network", net, "--name", name, "busybox", "sleep", "1000"); err != nil {
			return 0, 0, err
		}
	}
	took := time.Since(start)
	out, err := e.run("run", "--rm", "--network", net, "-v", blast+":/tcpblast:ro", "busybox",
		"/tcpblast", "resolve", "-n", "50", names[0], names[n/2], names[n-1])
	if err != nil {
		return took, 0, err
	}
	us, err := strconv.Atoi(strings.TrimSpace(out))
	return took, us, err
}

func (c *config) portRange(e engineCLI) (time.Duration, int, int, error) {
	name := "bench-ports-" + strings.ToLower(e.name)
	e.run("rm", "-f", name)
	defer e.run("rm", "-f", name)
	before := processes()
	start := time.Now()
	if _, err := e.run("run", "-d", "--name", name, "-p", "30000-30999:30000-30999", "busybox", "sleep", "1000"); err != nil {
		return 0, 0, 0, err
	}
	took := time.Since(start)
	// What the container's networking costs: its monitor or shim (the
	// parent of its process) and what serves its ports (docker-proxy,
	// whose command line names the container's address). Other work on
	// the machine starts processes too: only these are counted.
	pidOut, err := e.run("inspect", "-f", "{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
	if err != nil {
		return took, 0, 0, err
	}
	f := strings.Fields(pidOut)
	if len(f) < 2 {
		return took, 0, 0, fmt.Errorf("inspect %s: %q", name, pidOut)
	}
	ctr, _ := strconv.Atoi(f[0])
	ip := f[1]
	shim := ppid(ctr)
	var count, kib int
	for pid := range processes() {
		if _, ok := before[pid]; ok && pid != shim {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if pid == shim || (pid != ctr && strings.Contains(string(cmdline), "\x00"+ip+"\x00")) {
			count++
			kib += rssKiB(pid)
		}
	}
	return took, count, kib, nil
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// processes maps the pids of the running processes to their names.
func processes() map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue
		}
		out[pid] = strings.TrimSpace(string(comm))
	}
	return out
}

// teardownNetworking removes what berth's networking left for the
// bench's root once its containers are gone: the default bridge (user
// networks went with `network rm`) and the root's nftables tables. The
// root is a temporary directory, so nothing else would ever remove them.
func teardownNetworking(root string) {
	table := network.DataplaneTable(root)
	dp := dataplane.New(dataplane.WithTable(table))
	// The socket redirect's programs, attached to the cgroup2 root,
	// would outlive the root as its table would.
	dp.RemoveSocketRedirect(context.Background())
	// Its rules in Docker's DOCKER-USER chain (the anchor's dockerd-net
	// engine has one), which would outlive its bridges.
	dp.RemoveDockerUserRules()
	defer func() {
		for _, f := range dp.LockFiles() {
			os.Remove(f)
		}
	}()
	// Every bridge of the root (an interrupted run leaves its user
	// networks too), found by the alias berth marks them with.
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if strings.HasPrefix(l.Attrs().Alias, table+":") {
				netlink.LinkDel(l)
			}
		}
	}
	c, err := nftables.New()
	if err != nil {
		return
	}
	for _, t := range []*nftables.Table{
		{Name: table, Family: nftables.TableFamilyINet},
		{Name: table + "-dns", Family: nftables.TableFamilyINet},
		{Name: table, Family: nftables.TableFamilyBridge},
	} {
		c.DelTable(t)
		c.Flush() // one at a time: a missing table fails only its own
	}
}
