package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
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
	meds := c.medians(fns...)
	row("`run --rm busybox true` on the default bridge", meds[0], meds[1], "berth, --network none")
	fmt.Printf("| the bridge's cost (bridge − none) | %s | | |\n", ms(meds[0]-meds[1]))
	if dockerNet {
		row("`run --rm busybox true` on the default bridge", meds[0], meds[2], "Docker, bridge")
		fmt.Printf("| Docker's bridge cost | %s | | |\n", ms(meds[2]-meds[3]))
	}

	// 2. TCP throughput: host loopback, a port published on 127.0.0.1,
	// and the container's own address.
	loop, err := c.hostLoopbackMBs(blast)
	if err != nil {
		return err
	}
	for i, e := range engines {
		port := 47100 + i
		pub, direct, peer, err := c.containerMBs(e, blast, port)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			continue
		}
		fmt.Printf("| %s: TCP host → 127.0.0.1-published port (4 GiB) | %.0f MB/s | %.0f MB/s (host loopback) | %.2f |\n", e.name, pub, loop, pub/loop)
		fmt.Printf("| %s: TCP host → container address (4 GiB) | %.0f MB/s | %.0f MB/s (host loopback) | %.2f |\n", e.name, direct, loop, direct/loop)
		fmt.Printf("| %s: client address seen through the published port | %s | | |\n", e.name, peer)
	}

	// 3. 100 containers on one network: start time and lookups.
	for _, e := range engines {
		start, lookup, err := c.hundredOnANetwork(e, blast)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			continue
		}
		fmt.Printf("| %s: 100 × `run -d --network benchnet` | %s | | |\n", e.name, ms(start))
		fmt.Printf("| %s: name lookup among them (median) | %d µs | | |\n", e.name, lookup)
	}

	// 4. A 1,000-port range: start time, processes and memory it costs.
	for _, e := range engines {
		d, procs, kib, err := c.portRange(e)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			continue
		}
		fmt.Printf("| %s: `run -d -p 30000-30999:30000-30999` | %s | %d processes, %.1f MiB | |\n", e.name, ms(d), procs, float64(kib)/1024)
	}
	return nil
}

const blastBytes = "4294967296"

// hostLoopbackMBs is the anchor: the same transfer over the host's loopback.
func (c *config) hostLoopbackMBs(blast string) (float64, error) {
	recv := exec.Command(blast, "recv", "-l", "127.0.0.1:47099")
	if err := recv.Start(); err != nil {
		return 0, err
	}
	defer func() { recv.Process.Kill(); recv.Wait() }()
	return medianMBs(func() (string, error) { return sendOnce(blast, "127.0.0.1:47099") })
}

func sendOnce(blast, addr string) (string, error) {
	var out string
	var err error
	// The receiver may still be coming up.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var b []byte
		b, err = exec.Command(blast, "send", "-c", addr, "-n", blastBytes).CombinedOutput()
		if out = string(b); err == nil {
			return out, nil
		}
	}
	return out, fmt.Errorf("send to %s: %v: %s", addr, err, out)
}

// medianMBs runs send three times and returns the median rate.
func medianMBs(send func() (string, error)) (float64, error) {
	var rates []float64
	for range 3 {
		out, err := send()
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseFloat(strings.Fields(out)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("tcpblast said %q", out)
		}
		rates = append(rates, v)
	}
	slices.Sort(rates)
	return rates[1], nil
}

func (c *config) containerMBs(e engineCLI, blast string, port int) (pub, direct float64, peer string, err error) {
	name := "bench-blast-" + strings.ToLower(e.name)
	e.run("rm", "-f", name)
	defer e.run("rm", "-f", name)
	if _, err = e.run("run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:5001", port),
		"-v", blast+":/tcpblast:ro", "busybox", "/tcpblast", "recv", "-l", ":5001"); err != nil {
		return
	}
	ip, err := e.run("inspect", "-f", "{{.NetworkSettings.IPAddress}}", name)
	if err != nil {
		return
	}
	ip = strings.TrimSpace(ip)
	var last string
	if pub, err = medianMBs(func() (string, error) {
		out, err := sendOnce(blast, fmt.Sprintf("127.0.0.1:%d", port))
		last = out
		return out, err
	}); err != nil {
		return
	}
	if f := strings.Fields(last); len(f) >= 4 {
		peer = f[3]
	}
	direct, err = medianMBs(func() (string, error) { return sendOnce(blast, ip+":5001") })
	return
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
	// What the container's networking costs: the processes that came
	// with it (monitor, proxies, shim), less the container's own sleep.
	var count, kib int
	for pid, comm := range processes() {
		if _, ok := before[pid]; ok || comm == "sleep" {
			continue
		}
		count++
		kib += rssKiB(pid)
	}
	return took, count, kib, nil
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
