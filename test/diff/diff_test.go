// Package diff is the differential test suite: the commands of
// testdata/cases.txt run against berth and against Docker, and their exit
// codes, normalised stdout and the gist of stderr must agree.
//
// The expected outputs are golden files taken from Docker
// (testdata/golden/<case>.golden, written by `go test ./test/diff -update`
// with a Docker engine at hand). Every run compares berth with them; when
// a Docker engine is available (a private dockerd the suite starts when
// dockerd is installed and it runs as root, or one named by
// BERTH_DIFF_DOCKER_HOST) Docker is run too and compared with the same
// golden files, so a stale golden file shows. In CI (CI=true) a missing
// Docker engine is a failure. A step where berth follows current Docker
// rather than Engine 20.10 says so in the case (differs: REASON and
// berth's expected result, see cases.txt's header): berth is checked
// against that, Docker still against the golden file, and the summary
// lists every such step with its reason.
//
// The failing cases of the day:
//
//	go test ./test/diff -run TestDifferential -v 2>&1 | grep -- '--- FAIL'
//
// and the end of the run lists them on one line.
package diff

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

var (
	update   = flag.Bool("update", false, "rewrite testdata/golden from Docker's output (needs a Docker engine)")
	onlyCase = flag.String("case", "", "run only the cases whose names contain this")
	noDocker = flag.Bool("nodocker", false, "compare berth with the golden files only, even where Docker could run (not in CI)")
)

// suiteDir holds everything the suite makes on the host: the berth
// binary, each case's berth root, the private dockerd. Its name carries
// the test process's pid, so a later run can sweep what a killed run left.
var suiteDir string

func TestMain(m *testing.M) {
	flag.Parse()
	// The cases mostly wait on the engines, not the CPU: run more of
	// them at once than there are cores, unless -parallel says otherwise.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", "6")
	}
	var err error
	if suiteDir, err = testutil.NewSuiteDir("berth-diff"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// t.TempDir() and the engines' temporary files go there too.
	os.Setenv("TMPDIR", suiteDir)
	stop := testutil.OnTimeoutOrSignal(func() { testutil.SweepDir(suiteDir) })
	code := m.Run()
	stop()
	testutil.SweepDir(suiteDir)
	os.Exit(code)
}

// goldenPath is where a case's expected output lives.
func goldenPath(name string) string { return filepath.Join("testdata", "golden", name+".golden") }

// stepOut is what one checked command produced on one engine.
type stepOut struct {
	cmd    string
	code   int
	stdout []string
	stderr string
}

func TestDifferential(t *testing.T) {
	testutil.RequiresRoot(t)
	cases, err := parseCases(filepath.Join("testdata", "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(suiteDir, "berth")
	build := exec.Command("go", "build", "-o", bin, "github.com/berth-dev/berth/cmd/berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	bb := testutil.BusyboxTar(t)
	var docker *engine
	if *noDocker && (testutil.InCI() || *update) {
		t.Fatal("-nodocker: in CI and with -update the suite runs Docker too")
	} else if !*noDocker {
		docker = dockerEngine(t, suiteDir, bb)
	}
	if docker == nil {
		t.Log("no Docker engine: comparing berth with the golden files only")
	}
	if *update {
		os.MkdirAll(filepath.Join("testdata", "golden"), 0o755)
	}

	var mu sync.Mutex
	var failed []string
	var selected []*testCase
	for _, c := range cases {
		if *onlyCase == "" || strings.Contains(c.name, *onlyCase) {
			selected = append(selected, c)
		}
	}
	t.Cleanup(func() {
		sort.Strings(failed)
		if d := deliberateDifferences(selected); len(d) > 0 {
			t.Logf("%d deliberate differences from Docker 20.10 (berth follows current Docker; checked against the case's berth-* lines):\n\t%s", len(d), strings.Join(d, "\n\t"))
		}
		t.Logf("%d of %d cases differ: %s", len(failed), len(selected), strings.Join(failed, " "))
	})
	// Serial cases first, each alone against a clean Docker engine; the
	// others after them, in parallel, each with names of its own.
	sort.SliceStable(cases, func(i, j int) bool { return cases[i].serial && !cases[j].serial })
	for i, c := range cases {
		if *onlyCase != "" && !strings.Contains(c.name, *onlyCase) {
			continue
		}
		if docker != nil && !c.serial && (i == 0 || cases[i-1].serial) {
			resetDocker(t, docker) // after the serial cases' prunes
		}
		t.Run(c.name, func(t *testing.T) {
			if !c.serial {
				t.Parallel()
			} else if docker != nil {
				resetDocker(t, docker)
			}
			defer func() {
				if t.Failed() {
					mu.Lock()
					failed = append(failed, c.name)
					mu.Unlock()
				}
			}()
			runDifferential(t, c, bin, bb, docker)
		})
	}
}

func runDifferential(t *testing.T, c *testCase, bin, bb string, docker *engine) {
	var berthOut, dockerOut []stepOut
	var berthErr, dockerErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		dir, err := os.MkdirTemp(suiteDir, "case-")
		if err != nil {
			berthErr = err
			return
		}
		e, err := newBerthRoot(bin, dir, bb)
		if err != nil {
			berthErr = err
			testutil.SweepDir(dir)
			return
		}
		defer func() {
			if left := sweepBerthRoot(e, dir); len(left) > 0 && berthErr == nil {
				berthErr = fmt.Errorf("after removing every container and network, the root left in the kernel: %s", strings.Join(left, ", "))
			}
		}()
		berthOut, berthErr = runCase(e, c, filepath.Join(dir, "tmp"), bb)
	}()
	if docker != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir, err := os.MkdirTemp(suiteDir, "dcase-")
			if err != nil {
				dockerErr = err
				return
			}
			defer os.RemoveAll(dir)
			defer sweepDockerCase(docker, prefix(c))
			dockerOut, dockerErr = runCase(docker, c, filepath.Join(dir, "tmp"), bb)
		}()
	}
	wg.Wait()

	if *update {
		if dockerErr != nil {
			t.Fatalf("docker: %v", dockerErr)
		}
		for i, s := range checkedSteps(c) {
			for _, p := range s.stderr {
				if p != "any" && !strings.Contains(dockerOut[i].stderr, p) {
					t.Errorf("step %q: Docker's stderr %q lacks the case's phrase %q", s.cmd, dockerOut[i].stderr, p)
				}
			}
		}
		if err := os.WriteFile(goldenPath(c.name), []byte(formatGolden(dockerOut)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := readGolden(goldenPath(c.name))
	if err != nil {
		t.Fatalf("%v (write it with `go test ./test/diff -update -case %s` where Docker runs)", err, c.name)
	}
	steps := checkedSteps(c)
	if len(want) != len(steps) {
		t.Fatalf("golden file %s has %d steps, the case %d: rewrite it with -update", goldenPath(c.name), len(want), len(steps))
	}
	for i, s := range steps {
		if want[i].cmd != s.cmd {
			t.Fatalf("golden file %s step %d is %q, the case's %q: rewrite it with -update", goldenPath(c.name), i+1, want[i].cmd, s.cmd)
		}
	}
	if berthErr != nil {
		t.Errorf("berth: %v", berthErr)
	} else {
		for i, s := range steps {
			bs, bw := berthWant(s, want[i])
			if msg := compare(bs, bw, berthOut[i]); msg != "" {
				what := "berth differs"
				if s.berth != nil {
					what = "berth differs from what the case's differs: says"
				}
				t.Errorf("%s at cases.txt:%d `%s`\n%s", what, s.line, s.cmd, msg)
			}
		}
	}
	if docker != nil && !*update {
		if dockerErr != nil {
			t.Errorf("docker: %v", dockerErr)
		} else {
			for i, s := range steps {
				if msg := compare(s, want[i], dockerOut[i]); msg != "" {
					t.Errorf("Docker itself differs from the golden file at cases.txt:%d `%s` (stale golden file? rewrite with -update)\n%s", s.line, s.cmd, msg)
				}
			}
		}
	}
}

func prefix(c *testCase) string { return "dt-" + c.name }

func checkedSteps(c *testCase) []step {
	var out []step
	for _, s := range c.steps {
		if s.kind == kRun || s.kind == kHost {
			out = append(out, s)
		}
	}
	return out
}

// runCase runs a case's commands on one engine. A setup or poll command
// that fails ends it with an error; cleanup commands always run.
func runCase(e *engine, c *testCase, tmp, bb string) ([]stepOut, error) {
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	paths := map[string]string{tmp: "{tmp}", prefix(c): "{n}"}
	for k, v := range e.paths {
		paths[k] = v
	}
	expand := strings.NewReplacer("{n}", prefix(c), "{tmp}", tmp, "{bb}", bb).Replace
	defer func() {
		for _, s := range c.steps {
			if s.kind == kCleanup {
				if args, err := splitArgs(expand(s.cmd)); err == nil {
					e.exec(args, s.stdin, time.Minute)
				}
			}
		}
	}()
	var outs []stepOut
	for _, s := range c.steps {
		var r result
		switch s.kind {
		case kCleanup:
			continue
		case kHost:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			cmd := exec.CommandContext(ctx, "sh", "-c", expand(s.cmd))
			cmd.Dir = tmp
			r = runCmd(ctx, cmd, s.stdin)
			cancel()
		case kPoll:
			args, _ := splitArgs(expand(s.cmd))
			deadline := time.Now().Add(30 * time.Second)
			for {
				r = e.exec(withNetworkNone(args), s.stdin, time.Minute)
				if r.code == 0 && (s.want == "" || strings.TrimSpace(r.stdout) == s.want) {
					break
				}
				if time.Now().After(deadline) {
					return outs, fmt.Errorf("cases.txt:%d: poll `%s` never succeeded: %s", s.line, s.cmd, r)
				}
				time.Sleep(50 * time.Millisecond)
			}
			continue
		default:
			args, _ := splitArgs(expand(s.cmd))
			r = e.exec(withNetworkNone(args), s.stdin, 90*time.Second)
		}
		if r.code == -1 {
			return outs, fmt.Errorf("cases.txt:%d: `%s`: %s", s.line, s.cmd, r.stderr)
		}
		if s.kind == kSetup {
			if r.code != 0 {
				return outs, fmt.Errorf("cases.txt:%d: setup `%s` failed: %s", s.line, s.cmd, r)
			}
			continue
		}
		outs = append(outs, stepOut{cmd: s.cmd, code: r.code,
			stdout: normalize(r.stdout, paths, s.out),
			stderr: strings.Join(normalize(r.stderr, paths, ""), "\n")})
	}
	return outs, nil
}

// withNetworkNone adds --network none to run and create unless the case
// names a network: neither engine may reach a network here, and the
// outputs must not depend on a bridge only one of them has.
func withNetworkNone(args []string) []string {
	i := 0
	if len(args) > 1 && args[0] == "container" {
		i = 1
	}
	if len(args) <= i || (args[i] != "run" && args[i] != "create") {
		return args
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--network" || a == "--net" || strings.HasPrefix(a, "--network=") || strings.HasPrefix(a, "--net=") {
			return args
		}
	}
	out := append([]string{}, args[:i+1]...)
	out = append(out, "--network", "none")
	return append(out, args[i+1:]...)
}

// compare returns what differs between the expected and the actual output
// of one step: the exit code exactly, stdout line by line (normalised),
// and of stderr its gist: the case's key phrases, or else only whether
// there is any.
func compare(s step, want, got stepOut) string {
	var b strings.Builder
	if want.code != got.code {
		fmt.Fprintf(&b, "  exit: got %d, want %d\n", got.code, want.code)
	}
	if s.out != "ignore" && strings.Join(want.stdout, "\n") != strings.Join(got.stdout, "\n") {
		b.WriteString("  stdout (-want +got):\n")
		b.WriteString(lineDiff(want.stdout, got.stdout))
	}
	if len(s.stderr) == 1 && s.stderr[0] == "any" {
		// The case does not care what goes to stderr.
	} else if len(s.stderr) > 0 {
		for _, p := range s.stderr {
			if !strings.Contains(got.stderr, p) {
				fmt.Fprintf(&b, "  stderr lacks %q\n", p)
			}
		}
	} else if (want.stderr == "") != (got.stderr == "") {
		b.WriteString("  stderr: one engine printed some, the other none\n")
	}
	if b.Len() > 0 {
		fmt.Fprintf(&b, "  stderr got:  %q\n  stderr want: %q\n", clip(got.stderr), clip(want.stderr))
	}
	return b.String()
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// lineDiff shows two line lists as a minimal edit script (LCS).
func lineDiff(a, b []string) string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			fmt.Fprintf(&out, "     %s\n", a[i])
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&out, "    +%s\n", b[j])
			j++
		default:
			fmt.Fprintf(&out, "    -%s\n", a[i])
			i++
		}
	}
	return out.String()
}

// The golden file of a case, per checked step:
//
//	=== COMMAND
//	exit N
//	stderr: LINE
//	| STDOUT LINE
func formatGolden(outs []stepOut) string {
	var b strings.Builder
	b.WriteString("# Taken from Docker by `go test ./test/diff -update`; normalised. Do not edit.\n")
	for _, o := range outs {
		fmt.Fprintf(&b, "=== %s\nexit %d\n", o.cmd, o.code)
		if o.stderr != "" {
			for _, l := range strings.Split(o.stderr, "\n") {
				fmt.Fprintf(&b, "stderr: %s\n", l)
			}
		}
		for _, l := range o.stdout {
			fmt.Fprintf(&b, "| %s\n", l)
		}
	}
	return b.String()
}

func readGolden(path string) ([]stepOut, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("no golden file: %v", err)
	}
	var outs []stepOut
	var errLines []string
	flush := func() {
		if len(outs) > 0 {
			outs[len(outs)-1].stderr = strings.Join(errLines, "\n")
		}
		errLines = nil
	}
	for _, l := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "#") && len(outs) == 0:
		case strings.HasPrefix(l, "=== "):
			flush()
			outs = append(outs, stepOut{cmd: l[4:]})
		case len(outs) == 0:
			return nil, fmt.Errorf("%s: %q before the first ===", path, l)
		case strings.HasPrefix(l, "exit "):
			fmt.Sscan(l[5:], &outs[len(outs)-1].code)
		case strings.HasPrefix(l, "stderr: ") || l == "stderr:":
			errLines = append(errLines, strings.TrimPrefix(strings.TrimPrefix(l, "stderr:"), " "))
		case strings.HasPrefix(l, "| ") || l == "|":
			o := &outs[len(outs)-1]
			o.stdout = append(o.stdout, strings.TrimPrefix(strings.TrimPrefix(l, "|"), " "))
		default:
			return nil, fmt.Errorf("%s: cannot read %q", path, l)
		}
	}
	flush()
	return outs, nil
}
