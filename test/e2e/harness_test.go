// Package e2e drives the built berth binary as a user would, against a
// temporary --root and --runroot per test.
package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// berthBin is built once by TestMain.
var berthBin string

// suiteDir holds everything the tests make on the host (the binary, every
// root, every t.TempDir), so that one sweep removes what a failed, panicked
// or timed-out test left: containers, monitors, cgroups, mounts, files.
var suiteDir string

// suitePrefix names the suite directories. Not "berth...": the paths of
// t.TempDir() show in containers' command lines, and tests look there for
// berth's own processes by that name.
const suitePrefix = "e2e-suite"

func TestMain(m *testing.M) {
	flag.Parse()
	// What an earlier run killed outright (kill -9) left is swept here.
	dir, err := testutil.NewSuiteDir(suitePrefix)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	suiteDir = dir
	// t.TempDir() and the berth processes' temporary files go there too.
	os.Setenv("TMPDIR", dir)
	// Registries off loopback are out of reach (a dead proxy on
	// loopback): a test that pulls from Docker Hub by mistake fails at
	// once without leaving the machine. Nobody's registry configuration
	// or credentials are read.
	for k, v := range map[string]string{
		"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "", "https_proxy": "", "http_proxy": "", "no_proxy": "",
		"BERTH_CONFIG_FILE": filepath.Join(dir, "daemon.json"), "DOCKER_CONFIG": filepath.Join(dir, "docker-config"),
	} {
		os.Setenv(k, v)
	}
	stop := testutil.OnTimeoutOrSignal(func() { testutil.SweepDir(dir) })
	berthBin = filepath.Join(dir, "berth")
	// berth and, next to it, the start-path binary it runs containers with.
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/berth-dev/berth/cmd/berth", "github.com/berth-dev/berth/cmd/berth-shim")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as shipped
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build berth:", err)
		testutil.SweepDir(dir)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	testutil.SweepDir(dir)
	os.Exit(code)
}

// env is one test's berth installation: its own root and runroot.
type env struct {
	t       testing.TB
	root    string
	runroot string
	dir     string
	extra   []string // more environment for berth (KEY=value)
	wrap    []string // a command berth runs under (e.g. nsenter --net=...)
}

// newEnv prepares a root with the busybox image imported as busybox:latest.
func newEnv(t testing.TB) *env {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.RequiresBinary(t, "runc")
	dir, err := os.MkdirTemp(suiteDir, "env-")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run")}
	t.Cleanup(e.cleanup)
	e.must("import", testutil.BusyboxTar(t), "busybox:latest")
	return e
}

// cleanup removes every container (stopping monitors), then unmounts
// anything left under the test's directories and deletes them.
func (e *env) cleanup() {
	e.removeAll()
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], e.dir) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		e.t.Logf("cleanup: unmounting leftover %s", mounts[i])
		unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
	os.RemoveAll(e.dir)
}

// removeAll removes the root's containers and networks, and fails the
// test if berth left anything of the root in the kernel.
func (e *env) removeAll() {
	if ids := strings.Fields(e.run("ps", "-aq").stdout); len(ids) > 0 {
		e.run(append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	// The networks go the ordinary way: their bridges leave the kernel,
	// and with the last one the root's nftables table; berth must leave
	// nothing there (the suite's sweep would otherwise hide a leak).
	e.run("network", "prune", "-f")
	testutil.NoDataplaneLeft(e.t, testutil.RootTable(e.root), "cleanup: after removing every container and network")
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	argv := append([]string{berthBin, "--root", e.root, "--runroot", e.runroot}, args...)
	argv = append(append([]string{}, e.wrap...), argv...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "BERTH_ROOT=", "BERTH_RUNROOT="), e.extra...)
	return cmd
}

// run runs berth with args and a 2-minute deadline.
func (e *env) run(args ...string) result {
	return e.runIn(nil, args...)
}

func (e *env) runIn(stdin []byte, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else {
			e.t.Fatalf("berth %v: %v", args, err)
		}
	}
	return r
}

// must runs berth and fails the test unless it exits 0; it returns stdout.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.code != 0 {
		e.t.Fatalf("berth %s: %s", strings.Join(args, " "), r)
	}
	return r.stdout
}

// inspect returns one field of a container through a Go template.
func (e *env) inspect(ref, format string) string {
	e.t.Helper()
	return strings.TrimSpace(e.must("inspect", "-f", format, ref))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// buildTestHelper builds the static program testdata/NAME (an attacker or
// a tool a test runs inside containers) into dir and returns its path.
func buildTestHelper(t *testing.T, name, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/%s: %v\n%s", name, err, out)
	}
	return bin
}
