package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestUpdate checks docker update: live cgroup values, the record, the
// restart policy taking effect, and Docker's refusals and exit codes.
func TestUpdate(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.must("run", "-d", "--name", "up", "-m", "64m", "busybox", "sleep", "1000"))

	if out := e.must("update", "-m", "32m", "--cpus", "0.5", "--pids-limit", "20", "--cpu-shares", "512", "up"); out != "up\n" {
		t.Fatalf("update printed %q, want the name as given", out)
	}
	for _, c := range []struct{ controller, v1, v2, want string }{
		{"memory", "memory.limit_in_bytes", "memory.max", "33554432"},
		{"cpu", "cpu.cfs_quota_us", "cpu.max", "50000"},
		{"pids", "pids.max", "pids.max", "20"},
	} {
		if got := readCgroup(t, c.controller, id, c.v1, c.v2); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s after update: %q, want %s", c.v1, got, c.want)
		}
	}
	if got := e.inspect("up", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}}"); got != "33554432 134217728 500000000 20 512" {
		t.Errorf("inspect after update: %s", got)
	}

	// Docker's refusals: exit 1, the record unchanged.
	for _, c := range []struct {
		name string
		args []string
		msg  string
	}{
		{"no flags", []string{"up"}, "you must provide one or more flags"},
		{"memory above swap", []string{"-m", "200m", "up"}, "Memory limit should be smaller than already set memoryswap limit"},
		{"swap below memory", []string{"-m", "100m", "--memory-swap", "50m", "up"}, "Minimum memoryswap limit should be larger than memory limit"},
		{"too little memory", []string{"-m", "5m", "up"}, "Minimum memory limit allowed is 6MB"},
		{"cpu period over --cpus", []string{"--cpu-period", "50000", "up"}, "CPU Period cannot be updated as NanoCPUs has already been set"},
		{"unknown policy", []string{"--restart", "bogus", "up"}, "invalid restart policy 'bogus'"},
		{"no such container", []string{"-m", "40m", "--memory-swap", "80m", "nosuch"}, "No such container: nosuch"},
	} {
		r := e.run(append([]string{"update"}, c.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("%s: %s\nwant exit 1 and %q", c.name, r, c.msg)
		}
	}
	if got := e.inspect("up", "{{.HostConfig.Memory}}"); got != "33554432" {
		t.Errorf("a refused update changed the record: Memory %s", got)
	}

	// Memory below what the container uses: the kernel refuses, nothing
	// changes.
	e.must("run", "-d", "--name", "full", "-m", "64m", "busybox", "sh", "-c", "head -c 30000000 /dev/zero > /dev/shm/x; echo ok; sleep 1000")
	eventually(t, 20*time.Second, "the container to fill its memory", func() bool { return e.must("logs", "full") == "ok\n" })
	if r := e.run("update", "-m", "8m", "--memory-swap", "16m", "full"); r.code != 1 || !strings.Contains(r.stderr, "Cannot update container") {
		t.Errorf("memory below usage: %s", r)
	}
	if got := e.inspect("full", "{{.HostConfig.Memory}}"); got != "67108864" {
		t.Errorf("a failed live update changed the record: Memory %s", got)
	}

	// A stopped container: the record changes, the next start applies it.
	e.must("stop", "-t", "0", "up")
	e.must("update", "-m", "48m", "--memory-swap", "96m", "up")
	e.must("start", "up")
	if got := readCgroup(t, "memory", id, "memory.limit_in_bytes", "memory.max"); got != "50331648" {
		t.Errorf("memory limit after update of a stopped container and start: %s", got)
	}

	// The restart policy takes effect in the running monitor.
	e.must("run", "-d", "--name", "flap", "busybox", "sh", "-c", "sleep 0.3; exit 3")
	e.must("update", "--restart", "on-failure:2", "flap")
	eventually(t, 30*time.Second, "two restarts under the updated policy", func() bool {
		return e.inspect("flap", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
	})
	if got := e.inspect("flap", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"); got != "on-failure:2" {
		t.Errorf("restart policy in inspect: %s", got)
	}
	// Limits survive the monitor's restarts (it reuses the bundle).
	e.must("run", "-d", "--name", "again", "--restart", "always", "-m", "64m", "busybox", "sh", "-c", "sleep 0.5")
	againID := e.inspect("again", "{{.Id}}")
	e.must("update", "-m", "40m", "again")
	eventually(t, 30*time.Second, "a restart after the update", func() bool {
		n, _ := strconv.Atoi(e.inspect("again", "{{.RestartCount}}"))
		return n >= 2
	})
	eventually(t, 10*time.Second, "the restarted container running", func() bool {
		return e.inspect("again", "{{.State.Running}}") == "true"
	})
	if got := readCgroup(t, "memory", againID, "memory.limit_in_bytes", "memory.max"); got != "41943040" {
		t.Errorf("memory limit after a restart: %s, want the updated 41943040", got)
	}

	// --rm containers keep "no".
	e.must("run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "100")
	if r := e.run("update", "--restart", "always", "gone"); r.code != 1 || !strings.Contains(r.stderr, "Restart policy cannot be updated because AutoRemove is enabled") {
		t.Errorf("restart policy of a --rm container: %s", r)
	}
	e.must("rm", "-f", "gone")
	if r := e.run("update", "-m", "40m", "--memory-swap", "80m", "gone"); r.code != 1 || !strings.Contains(r.stderr, "No such container: gone") {
		t.Errorf("update of a removed container: %s", r)
	}
}
