package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestHarnessCleansUp: a test that panics, runs into -timeout or is
// killed with SIGKILL leaves no container, monitor, cgroup, mount or
// directory behind once its run ends (or, for SIGKILL, once the next run
// starts). The leaking test is this binary itself, run again with
// TestHarnessLeaker selected.
func TestHarnessCleansUp(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, mode := range []string{"panic", "timeout", "kill"} {
		t.Run(mode, func(t *testing.T) {
			idFile := filepath.Join(t.TempDir(), "id")
			cmd := exec.Command(os.Args[0], "-test.run", "^TestHarnessLeaker$", "-test.timeout", "20s", "-test.count", "1")
			cmd.Env = append(os.Environ(), "BERTH_E2E_LEAKER="+mode, "BERTH_E2E_LEAKER_ID="+idFile)
			out, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			if mode == "kill" {
				eventually(t, time.Minute, "the leaker's container", func() bool {
					raw, _ := os.ReadFile(idFile)
					return len(strings.TrimSpace(string(raw))) == 64
				})
				cmd.Process.Signal(syscall.SIGKILL)
			}
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute):
				cmd.Process.Kill()
				t.Fatal("the leaking test did not end")
			}
			if err == nil {
				t.Fatal("the leaking test passed; it should have failed")
			}
			raw, _ := os.ReadFile(idFile)
			id := strings.TrimSpace(string(raw))
			if len(id) != 64 {
				log, _ := os.ReadFile(out.Name())
				t.Fatalf("the leaker started no container (id %q):\n%s", id, tail(string(log), 3000))
			}
			prefix := fmt.Sprintf("%s/%s-%d-", os.TempDir(), suitePrefix, cmd.Process.Pid)
			var left []string
			if mode == "panic" {
				// The test's cleanups ran: nothing runs or is mounted any
				// more. Its suite directory stays until the next run (a
				// panic ends the process before TestMain can remove it).
				for _, l := range leftovers(id, prefix) {
					if !strings.HasPrefix(l, prefix) {
						left = append(left, l)
					}
				}
			}
			if mode != "timeout" {
				// What the next run does first.
				testutil.SweepStale(suitePrefix)
			}
			left = append(left, leftovers(id, prefix)...)
			if len(left) > 0 {
				log, _ := os.ReadFile(out.Name())
				t.Errorf("left behind after %s: %s\n%s", mode, strings.Join(left, "; "), tail(string(log), 2000))
			}
		})
	}
}

// leftovers lists what remains of container id and of the suite
// directories starting with dirPrefix.
func leftovers(id, dirPrefix string) []string {
	var left []string
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id)
	cgs2, _ := filepath.Glob("/sys/fs/cgroup/berth/" + id)
	left = append(left, append(cgs, cgs2...)...)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if raw, err := os.ReadFile(p); err == nil && strings.Contains(string(raw), "_monitor") && strings.Contains(string(raw), id) {
			left = append(left, "monitor "+p)
		}
	}
	dirs, _ := filepath.Glob(dirPrefix + "*")
	left = append(left, dirs...)
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dirPrefix) {
			left = append(left, "mount "+f[4])
		}
	}
	return left
}

// TestHarnessLeaker is TestHarnessCleansUp's leaking test: it runs a
// container with a bind mount of a t.TempDir and then panics, runs past
// -timeout or waits to be killed, as BERTH_E2E_LEAKER says.
func TestHarnessLeaker(t *testing.T) {
	mode := os.Getenv("BERTH_E2E_LEAKER")
	if mode == "" {
		t.Skip("run by TestHarnessCleansUp only")
	}
	e := newEnv(t)
	id := strings.TrimSpace(e.must("run", "-d", "-v", t.TempDir()+":/x", "busybox", "sleep", "600"))
	e.must("run", "-d", "busybox", "sleep", "600")
	if err := os.WriteFile(os.Getenv("BERTH_E2E_LEAKER_ID"), []byte(id), 0o644); err != nil {
		t.Fatal(err)
	}
	if mode == "panic" {
		panic("the leaker panics, as a broken test would")
	}
	time.Sleep(5 * time.Minute) // -timeout or SIGKILL ends it
}
