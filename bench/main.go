// Command bench measures berth against runc alone and, when they are
// installed, against Docker and Podman, in the same run. It prints medians
// and ratios; the figures go to bench/README.md.
//
//	go run ./bench [-n 20] [-docker] [-podman] [-sections core,network]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	n       int
	docker  bool
	podman  bool
	berth   string
	root    string
	runroot string
	work    string
	// sections are the groups of measurements to run (-sections).
	sections map[string]bool
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 20, "repetitions per latency measurement")
	flag.BoolVar(&c.docker, "docker", true, "measure Docker too when its engine answers")
	flag.BoolVar(&c.podman, "podman", true, "measure Podman too when installed")
	sections := flag.String("sections", "core,network", "measurement groups to run: core, network")
	flag.Parse()
	c.sections = map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		c.sections[strings.TrimSpace(s)] = true
	}
	if err := run(context.Background(), &c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c *config) error {
	work, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// The built-in runtime leaves a read-only mount of berth's binary in
	// its state directory (runtime/berth/exe:ro): detached before the
	// directory goes.
	defer unmountUnder(work)
	defer teardownNetworking(filepath.Join(work, "root"))
	c.work, c.root, c.runroot = work, filepath.Join(work, "root"), filepath.Join(work, "run")
	c.berth = filepath.Join(work, "berth")
	// berth and its start-path binary, side by side as installed.
	build := exec.Command("go", "build", "-o", work+"/", "./cmd/berth", "./cmd/berth-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	tarPath := filepath.Join(work, "busybox.tar")
	if out, err := exec.Command("sh", "scripts/mkbusybox.sh", tarPath).CombinedOutput(); err != nil {
		return fmt.Errorf("mkbusybox: %v\n%s", err, out)
	}
	if _, err := c.b("import", tarPath, "busybox:latest"); err != nil {
		return err
	}
	defer func() {
		ids, _ := c.b("ps", "-aq")
		if f := strings.Fields(ids); len(f) > 0 {
			c.b(append([]string{"rm", "-f"}, f...)...)
		}
	}()
	dockerOK := c.docker && dockerReady(tarPath)
	podmanOK := c.podman && podmanReady(tarPath)
	if podmanOK {
		defer sh("podman", "--runtime", "runc", "rm", "-af")
	}
	fmt.Printf("# berth benchmarks, %s, %d CPUs, runc %s\n\n", time.Now().UTC().Format("2006-01-02"), numCPU(), runcVersion())
	if c.sections["core"] {
		fmt.Printf("| measurement | berth | anchor | ratio |\n|---|---|---|---|\n")
		if err := c.coreRows(dockerOK, podmanOK); err != nil {
			return err
		}
		fmt.Printf("\nmedians of %d runs (50 × run -d: of %d rounds for berth, %d for Docker); ratio = berth / anchor (below 1 is faster)\n", c.n, fiftyRounds, dockerFiftyRounds)
	}
	if c.sections["network"] {
		fmt.Printf("\n| network measurement | berth | anchor | ratio |\n|---|---|---|---|\n")
		if err := c.networkRows(dockerOK); err != nil {
			return err
		}
	}
	return nil
}

// coreRows measures the container lifecycle: run --rm, 50 × run -d and
// their rm -f, monitor memory, ps -a.
func (c *config) coreRows(dockerOK, podmanOK bool) error {
	// 1. run --rm true: berth with its built-in runtime (the default) and
	// with runc, against runc alone, Docker and Podman.
	runcMed, err := c.runcAlone()
	if err != nil {
		return err
	}
	runOnce := func(extra ...string) func() error {
		return func() error {
			_, err := c.b(append(append([]string{"run", "--rm"}, extra...), "--network", "none", "busybox", "true")...)
			return err
		}
	}
	// berth and its anchors take turns, so that a change in the machine's
	// speed (these VMs vary) hits them alike.
	runs := []func() error{runOnce(), runOnce("--runtime", "runc")}
	if dockerOK {
		runs = append(runs, func() error { return sh("docker", "run", "--rm", "--network", "none", "busybox", "true") })
	}
	if podmanOK {
		runs = append(runs, func() error { return sh(podmanRun("--rm", "--network", "none", "busybox", "true")...) })
	}
	meds := c.medians(runs...)
	berthRun, berthRunc := meds[0], meds[1]
	row("`run --rm --network none busybox true`", berthRun, runcMed, "runc alone: create+start+wait+delete, same spec")
	row("same, berth with `--runtime runc`", berthRunc, runcMed, "runc alone")
	fmt.Printf("| berth's own overhead around runc | %s | | |\n", ms(berthRunc-runcMed))
	if dockerOK {
		row("`run --rm --network none busybox true`", berthRun, meds[2], "Docker")
	}
	if podmanOK {
		row("`run --rm --network none busybox true`", berthRun, meds[len(meds)-1], "Podman")
	}

	// 2. 50 sequential run -d, then rm -f of all 50: medians of
	// fiftyRounds rounds for berth (a round takes a second or two) and of
	// dockerFiftyRounds for Docker (a quarter of a minute each), taking
	// turns so that the VM's drift hits both; Podman's (minutes) once.
	var bStarts, bRms, dStarts, dRms []time.Duration
	for r := range fiftyRounds {
		s, rm := c.fifty("berth")
		bStarts, bRms = append(bStarts, s), append(bRms, rm)
		if dockerOK && r < dockerFiftyRounds {
			s, rm := c.fifty("docker")
			dStarts, dRms = append(dStarts, s), append(dRms, rm)
		}
	}
	startAll, rmAll := medianOf(bStarts), medianOf(bRms)
	row("50 × `run -d busybox sleep 1000`", startAll, 0, "")
	row("`rm -f` of those 50", rmAll, 0, "")
	if dockerOK {
		row("50 × `run -d busybox sleep 1000`", startAll, medianOf(dStarts), "Docker")
		row("`rm -f` of those 50", rmAll, medianOf(dRms), "Docker")
	}
	if podmanOK {
		ps, pr := c.fifty("podman")
		row("50 × `run -d busybox sleep 1000`", startAll, ps, "Podman")
		row("`rm -f` of those 50", rmAll, pr, "Podman")
	}

	// 3. Monitor memory of one idle container vs Docker's shim.
	id, err := c.b("run", "-d", "--network", "none", "busybox", "sleep", "1000")
	if err != nil {
		return err
	}
	id = strings.TrimSpace(id)
	time.Sleep(500 * time.Millisecond) // let the monitor settle into idleness
	mon := monitorRSS(c, id)
	// 3b. exec into that container: the monitor starts and waits for each
	// exec'd process (an exec session), so its memory after many is kept
	// too.
	execs := []func() error{func() error { _, err := c.b("exec", id, "true"); return err }}
	var shim int
	var did string
	if dockerOK {
		if out, err := output("docker", "run", "-d", "busybox", "sleep", "1000"); err == nil {
			did = strings.TrimSpace(out)
			time.Sleep(500 * time.Millisecond)
			shim = shimRSS(did)
			execs = append(execs, func() error { return sh("docker", "exec", did, "true") })
		}
	}
	execMeds := c.medians(execs...)
	execMed, dexec := execMeds[0], time.Duration(0)
	if len(execMeds) > 1 {
		dexec = execMeds[1]
	}
	if did != "" {
		sh("docker", "rm", "-f", did)
	}
	time.Sleep(500 * time.Millisecond) // as for the idle figure: let it settle
	monAfterExec := monitorRSS(c, id)
	fmt.Printf("| idle container's monitor RSS | %.1f MiB | %s | %s |\n", float64(mon)/1024, kib(shim, "Docker shim"), ratioStr(float64(mon), float64(shim)))
	row("`exec CONTAINER true`", execMed, dexec, "Docker")
	fmt.Printf("| monitor RSS after those execs | %.1f MiB | %s | %s |\n", float64(monAfterExec)/1024, kib(shim, "Docker shim, idle"), ratioStr(float64(monAfterExec), float64(shim)))
	if podmanOK {
		if pid, err := output(podmanRun("-d", "--network", "none", "busybox", "sleep", "1000")...); err == nil {
			pid = strings.TrimSpace(pid)
			time.Sleep(500 * time.Millisecond)
			conmon := 0
			if out, err := exec.Command("pgrep", "-f", "conmon.*"+pid).Output(); err == nil {
				n, _ := strconv.Atoi(strings.Fields(string(out))[0])
				conmon = rssKiB(n)
			}
			fmt.Printf("| idle container's monitor RSS | %.1f MiB | %s | %s |\n", float64(mon)/1024, kib(conmon, "Podman's conmon"), ratioStr(float64(mon), float64(conmon)))
			sh("podman", "--runtime", "runc", "rm", "-f", pid)
		}
	}
	c.b("rm", "-f", id)

	// 4. ps -a with 500 containers.
	for i := 0; i < 500; i++ {
		if _, err := c.b("create", "--name", "ps"+strconv.Itoa(i), "busybox", "true"); err != nil {
			return err
		}
	}
	lists := []func() error{func() error { _, err := c.b("ps", "-a"); return err }}
	if dockerOK {
		for i := 0; i < 500; i++ {
			sh("docker", "create", "--name", "berthbench-ps"+strconv.Itoa(i), "busybox", "true")
		}
		lists = append(lists, func() error { return sh("docker", "ps", "-a") })
	}
	psMeds := c.medians(lists...)
	psMed, dps := psMeds[0], time.Duration(0)
	if dockerOK {
		dps = psMeds[1]
		ids, _ := output("docker", "ps", "-aq", "--filter", "name=berthbench-")
		if f := strings.Fields(ids); len(f) > 0 {
			sh(append([]string{"docker", "rm", "-f"}, f...)...)
		}
	}
	row("`ps -a` with 500 containers", psMed, dps, "Docker")
	return nil
}

func (c *config) b(args ...string) (string, error) {
	cmd := exec.Command(c.berth, append([]string{"--root", c.root, "--runroot", c.runroot}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("berth %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// medians times fns in turns, c.n rounds, and returns the median of each
// (0 for one that failed).
func (c *config) medians(fns ...func() error) []time.Duration {
	meds, _ := c.mediansAndSamples(fns...)
	return meds
}

// pairedCost is the median over rounds of a's time minus b's in the same
// round (samples of mediansAndSamples): load that comes and goes between
// rounds cancels out, which a difference of two medians does not do.
func pairedCost(a, b []time.Duration) time.Duration {
	if len(a) == 0 || len(a) != len(b) {
		return 0
	}
	d := make([]time.Duration, len(a))
	for i := range a {
		d[i] = a[i] - b[i]
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// mediansAndSamples is medians with each function's times, in rounds'
// order (none for a function that failed).
func (c *config) mediansAndSamples(fns ...func() error) ([]time.Duration, [][]time.Duration) {
	ds := make([][]time.Duration, len(fns))
	failed := make([]bool, len(fns))
	for _, fn := range fns {
		fn() // warm caches
	}
	for i := 0; i < c.n; i++ {
		for j, fn := range fns {
			if failed[j] {
				continue
			}
			start := time.Now()
			if err := fn(); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				failed[j] = true
				continue
			}
			ds[j] = append(ds[j], time.Since(start))
		}
	}
	out := make([]time.Duration, len(fns))
	for j := range fns {
		if failed[j] || len(ds[j]) == 0 {
			continue
		}
		sorted := append([]time.Duration(nil), ds[j]...)
		sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
		out[j] = sorted[len(sorted)/2]
	}
	return out, ds
}

func (c *config) median(fn func() error) time.Duration {
	var ds []time.Duration
	fn() // warm caches
	for i := 0; i < c.n; i++ {
		start := time.Now()
		if err := fn(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 0
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// runcAlone times create+start+wait+delete of /bin/true from a prepared
// bundle: the floor any engine built on runc stands on.
func (c *config) runcAlone() (time.Duration, error) {
	// runc's bundle is a config.json (the built-in runtime's is compiled).
	id, err := c.b("create", "--runtime", "runc", "--network", "none", "busybox", "true")
	if err != nil {
		return 0, err
	}
	id = strings.TrimSpace(id)
	// Let berth write the bundle once (start), then reuse its config.
	if _, err := c.b("start", "-a", id); err != nil {
		return 0, err
	}
	bundle := filepath.Join(c.work, "runc-bundle")
	os.MkdirAll(bundle, 0o755)
	rootfs := filepath.Join(bundle, "rootfs")
	os.MkdirAll(rootfs, 0o755)
	if out, err := exec.Command("sh", "-c", "tar -C "+rootfs+" -xf "+filepath.Join(c.work, "busybox.tar")).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("extract: %v %s", err, out)
	}
	// The very spec berth generated (seccomp, masks, cgroups, mounts), with
	// its rootfs swapped for a plain directory: what the runtime alone costs
	// for the same container.
	raw, err := os.ReadFile(filepath.Join(c.runroot, "containers", id, "config.json"))
	if err != nil {
		return 0, err
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return 0, err
	}
	spec["root"] = map[string]any{"path": rootfs}
	linux := spec["linux"].(map[string]any)
	linux["cgroupsPath"] = "/berth-bench/runc"
	// berth makes the network namespace itself (under its runroot, gone
	// with the container); runc alone makes a new one, as berth's runtime
	// used to.
	for _, ns := range linux["namespaces"].([]any) {
		delete(ns.(map[string]any), "path")
	}
	raw, _ = json.Marshal(spec)
	os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644)
	state := filepath.Join(c.work, "runc-state")
	i := 0
	med := c.median(func() error {
		i++
		name := "bench-runc-" + strconv.Itoa(i)
		return sh("runc", "--root", state, "run", "--bundle", bundle, name)
	})
	c.b("rm", "-f", id)
	return med, nil
}

// fiftyRounds is how many times the bench runs berth's 50 × run -d, and
// dockerFiftyRounds Docker's.
const (
	fiftyRounds       = 5
	dockerFiftyRounds = 3
)

// medianOf is the median of ds; 0 when any is 0 (a failed round).
func medianOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 || slices.Contains(ds, 0) {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func (c *config) fifty(engine string) (time.Duration, time.Duration) {
	var ids []string
	start := time.Now()
	for i := 0; i < 50; i++ {
		var out string
		var err error
		switch engine {
		case "berth":
			out, err = c.b("run", "-d", "--network", "none", "busybox", "sleep", "1000")
		case "podman":
			out, err = output(podmanRun("-d", "--network", "none", "busybox", "sleep", "1000")...)
		default:
			out, err = output("docker", "run", "-d", "--network", "none", "busybox", "sleep", "1000")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 0, 0
		}
		ids = append(ids, strings.TrimSpace(out))
	}
	started := time.Since(start)
	start = time.Now()
	switch engine {
	case "berth":
		c.b(append([]string{"rm", "-f"}, ids...)...)
	case "podman":
		sh(append([]string{"podman", "--runtime", "runc", "rm", "-f"}, ids...)...)
	default:
		sh(append([]string{"docker", "rm", "-f"}, ids...)...)
	}
	return started, time.Since(start)
}

func monitorRSS(c *config, id string) int {
	out, err := exec.Command("pgrep", "-f", "_monitor .*"+id).Output()
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.Fields(string(out))[0])
	return rssKiB(pid)
}

func shimRSS(id string) int {
	out, err := exec.Command("pgrep", "-f", "containerd-shim.*"+id).Output()
	if err != nil {
		out, err = exec.Command("pgrep", "-f", "containerd-shim").Output()
		if err != nil {
			return 0
		}
	}
	pid, _ := strconv.Atoi(strings.Fields(string(out))[0])
	return rssKiB(pid)
}

func rssKiB(pid int) int {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return 0
}

func dockerReady(tarPath string) bool {
	if _, err := exec.LookPath("docker"); err != nil {
		return false
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: no Docker engine answers; Docker columns are left empty")
		return false
	}
	if exec.Command("docker", "image", "inspect", "busybox").Run() != nil {
		if out, err := exec.Command("docker", "import", tarPath, "busybox:latest").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: docker import: %v %s\n", err, out)
			return false
		}
	}
	return true
}

// podmanRun is a `podman run` command line that works on these machines.
// Podman asks by default for more open files and processes than their hard
// limits allow, and fails to start any container ("--ulimit host" is not
// enough: it still sets RLIMIT_NPROC); its default runtime, crun, refuses
// hybrid cgroups. So: explicit limits within the host's, and runc.
func podmanRun(args ...string) []string {
	return append([]string{"podman", "--runtime", "runc", "run", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}, args...)
}

func podmanReady(tarPath string) bool {
	if _, err := exec.LookPath("podman"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: podman is not installed (apt-get install -y podman); Podman rows are left out")
		return false
	}
	if exec.Command("podman", "image", "exists", "busybox").Run() != nil {
		if out, err := exec.Command("podman", "import", tarPath, "busybox:latest").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: podman import: %v %s\n", err, out)
			return false
		}
	}
	if err := sh(podmanRun("--rm", "--network", "none", "busybox", "true")...); err != nil {
		fmt.Fprintln(os.Stderr, "bench: podman cannot run a container here:", err)
		return false
	}
	return true
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func output(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).Output()
	return string(out), err
}

func row(name string, berth, anchor time.Duration, anchorName string) {
	if anchor == 0 {
		fmt.Printf("| %s | %s | | |\n", name, ms(berth))
		return
	}
	fmt.Printf("| %s | %s | %s (%s) | %s |\n", name, ms(berth), ms(anchor), anchorName, ratioStr(float64(berth), float64(anchor)))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func kib(n int, name string) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f MiB (%s)", float64(n)/1024, name)
}

func ratioStr(a, b float64) string {
	if b == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", a/b)
}

func numCPU() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func runcVersion() string {
	out, _ := exec.Command("runc", "--version").Output()
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return f[2]
	}
	return "?"
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		unix.Unmount(points[i], unix.MNT_DETACH)
	}
}
