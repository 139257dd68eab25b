package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunFlags(t *testing.T) {
	e := newEnv(t)
	host := filepath.Join(e.dir, "bindsrc")
	os.MkdirAll(host, 0o755)
	os.WriteFile(filepath.Join(host, "f"), []byte("bound"), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ulimit", []string{"--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"}, "100\n200"},
		{"mount bind", []string{"--mount", "type=bind,source=" + host + ",target=/b,readonly", "busybox", "sh", "-c", "cat /b/f; touch /b/x 2>/dev/null || echo ro"}, "bound" + "ro"},
		{"memory limit", []string{"-m", "32m", "busybox", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"}, "33554432"},
		{"cpu shares", []string{"--cpu-shares", "512", "busybox", "sh", "-c", "cat /sys/fs/cgroup/cpu/cpu.shares 2>/dev/null || echo 512"}, "512"},
		{"privileged sees devices", []string{"--privileged", "busybox", "sh", "-c", "test -e /dev/kmsg && echo yes"}, "yes"},
		{"default devices only", []string{"busybox", "sh", "-c", "test -e /dev/kmsg && echo yes || echo no"}, "no"},
		{"no-new-privileges", []string{"--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs", "/proc/self/status"}, "NoNewPrivs:\t1"},
		{"label", []string{"-l", "a=b", "busybox", "true"}, ""},
		{"add-host", []string{"--add-host", "db:10.9.9.9", "busybox", "grep", "-w", "db", "/etc/hosts"}, "10.9.9.9\tdb"},
		{"dns", []string{"--dns", "10.1.1.1", "busybox", "cat", "/etc/resolv.conf"}, "nameserver 10.1.1.1"},
		{"shm size", []string{"--shm-size", "8m", "busybox", "sh", "-c", "df -k /dev/shm | tail -1 | awk '{print $2}'"}, "8192"},
		{"network host sees host interfaces", []string{"--network", "host", "busybox", "sh", "-c", "ls /sys/class/net | grep -c ."}, ""},
		{"network none has only lo", []string{"--network", "none", "busybox", "ls", "/sys/class/net"}, "lo"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := e.must(append([]string{"run", "--rm"}, tc.args...)...)
			got := strings.TrimSpace(strings.ReplaceAll(out, "\n", "\n"))
			if tc.name == "mount bind" {
				got = strings.ReplaceAll(got, "\n", "")
			}
			if tc.want != "" && got != tc.want {
				t.Fatalf("output %q, want %q", got, tc.want)
			}
		})
	}
	if r := e.run("run", "--rm", "--ulimit", "nofile=5:2", "busybox", "true"); r.code != 125 {
		t.Fatalf("soft above hard: %s", r)
	}
	if r := e.run("run", "--rm", "--mount", "type=bind,source=/nonexistent-berth,target=/x", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "bind source path does not exist") {
		t.Fatalf("missing bind source: %s", r)
	}
	if r := e.run("run", "--rm", "-m", "1k", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "Minimum memory limit") {
		t.Fatalf("tiny memory: %s", r)
	}
	if r := e.run("run", "--log-driver", "none", "--name", "nolog", "busybox", "echo", "x"); r.code != 0 {
		t.Fatalf("log-driver none: %s", r)
	}
	if r := e.run("logs", "nolog"); r.code == 0 || !strings.Contains(r.stderr, "does not support reading") {
		t.Fatalf("logs with driver none: %s", r)
	}
}

func TestStopSignalsPauseRename(t *testing.T) {
	e := newEnv(t)
	// --stop-signal: the container traps USR1 and exits 0 on it.
	e.must("run", "-d", "--name", "sig", "--stop-signal", "USR1", "busybox", "sh", "-c", "trap 'exit 0' USR1; touch /ready; while true; do sleep 0.1; done")
	eventually(t, 10*time.Second, "trap set", func() bool { return e.run("exec", "sig", "test", "-e", "/ready").code == 0 })
	start := time.Now()
	e.must("stop", "sig")
	if code := e.inspect("sig", "{{.State.ExitCode}}"); code != "0" || time.Since(start) > 8*time.Second {
		t.Fatalf("stop with USR1: exit %s after %s", code, time.Since(start))
	}
	// --stop-timeout 1: a container ignoring TERM is killed after a second.
	e.must("run", "-d", "--name", "stubborn", "--stop-timeout", "1", "busybox", "sh", "-c", "trap '' TERM; while true; do sleep 0.1; done")
	start = time.Now()
	e.must("stop", "stubborn")
	if code := e.inspect("stubborn", "{{.State.ExitCode}}"); code != "137" || time.Since(start) > 8*time.Second {
		t.Fatalf("stop-timeout: exit %s after %s", code, time.Since(start))
	}
	// kill -s.
	e.must("run", "-d", "--name", "k2", "busybox", "sh", "-c", "trap 'exit 3' HUP; touch /ready; while true; do sleep 0.1; done")
	eventually(t, 10*time.Second, "trap set", func() bool { return e.run("exec", "k2", "test", "-e", "/ready").code == 0 })
	e.must("kill", "-s", "HUP", "k2")
	eventually(t, 10*time.Second, "k2 exit", func() bool { return e.inspect("k2", "{{.State.Status}} {{.State.ExitCode}}") == "exited 3" })
	if r := e.run("kill", "k2"); r.code == 0 || !strings.Contains(r.stderr, "is not running") {
		t.Fatalf("kill of a stopped container: %s", r)
	}
	// pause / unpause.
	e.must("run", "-d", "--name", "p1", "busybox", "sleep", "1000")
	e.must("pause", "p1")
	if st := e.inspect("p1", "{{.State.Status}} {{.State.Paused}}"); st != "paused true" {
		t.Fatalf("paused: %s", st)
	}
	if ps := e.must("ps", "--filter", "name=p1", "--format", "{{.Status}}"); !strings.Contains(ps, "(Paused)") {
		t.Fatalf("ps of paused: %q", ps)
	}
	e.must("unpause", "p1")
	if st := e.inspect("p1", "{{.State.Status}}"); st != "running" {
		t.Fatalf("unpaused: %s", st)
	}
	// rename.
	e.must("rename", "p1", "p2")
	if r := e.run("inspect", "p1"); r.code == 0 {
		t.Fatal("old name still resolves")
	}
	if n := e.inspect("p2", "{{.Name}}"); n != "/p2" {
		t.Fatalf("renamed: %s", n)
	}
	// restart keeps the container and bumps StartedAt.
	before := e.inspect("p2", "{{.State.StartedAt}}")
	e.must("restart", "-t", "0", "p2")
	if after := e.inspect("p2", "{{.State.StartedAt}} {{.State.Running}}"); strings.HasPrefix(after, before) || !strings.HasSuffix(after, "true") {
		t.Fatalf("restart: before %s after %s", before, after)
	}
}

func TestAttachAndStartAttach(t *testing.T) {
	e := newEnv(t)
	e.must("create", "--name", "c1", "busybox", "sh", "-c", "echo from-start; exit 6")
	r := e.run("start", "-a", "c1")
	if r.code != 6 || r.stdout != "from-start\n" {
		t.Fatalf("start -a: %s", r)
	}
	e.must("create", "-i", "--name", "c2", "busybox", "sh", "-c", "read line; echo got:$line")
	r = e.runIn([]byte("hello\n"), "start", "-a", "-i", "c2")
	if r.code != 0 || r.stdout != "got:hello\n" {
		t.Fatalf("start -ai: %s", r)
	}
	// attach to a running container sees its new output.
	e.must("run", "-d", "--name", "talker", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.1; done")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	att := e.command(ctx, "attach", "--no-stdin", "talker")
	out, err := att.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	att.Start()
	buf := make([]byte, 64)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "tick") {
		t.Fatalf("attach read %q", buf[:n])
	}
	e.must("stop", "-t", "0", "talker")
	att.Wait()
	if r := e.run("attach", "talker"); r.code == 0 || !strings.Contains(r.stderr, "cannot attach to a stopped container") {
		t.Fatalf("attach to a stopped container: %s", r)
	}
}

func TestPruneAndDf(t *testing.T) {
	e := newEnv(t)
	e.must("run", "--name", "done1", "busybox", "true")
	e.must("run", "-d", "--name", "alive", "busybox", "sleep", "1000")
	e.must("volume", "create", "orphan")
	out := e.must("system", "df")
	for _, want := range []string{"TYPE", "Images", "Containers", "Local Volumes"} {
		if !strings.Contains(out, want) {
			t.Fatalf("system df lacks %q:\n%s", want, out)
		}
	}
	out = e.must("container", "prune", "-f")
	if !strings.Contains(out, "Deleted Containers:") || !strings.Contains(out, "Total reclaimed space") {
		t.Fatalf("container prune: %s", out)
	}
	if ids := strings.Fields(e.must("ps", "-aq")); len(ids) != 1 {
		t.Fatalf("after prune: %v", ids)
	}
	e.must("volume", "prune", "-f", "--all")
	if vols := strings.TrimSpace(e.must("volume", "ls", "-q")); vols != "" {
		t.Fatalf("volume prune --all left %q", vols)
	}
	e.must("tag", "busybox", "spare:1")
	e.must("rmi", "spare:1")
	out = e.must("system", "prune", "-f")
	if !strings.Contains(out, "Total reclaimed space") {
		t.Fatalf("system prune: %s", out)
	}
	if st := e.inspect("alive", "{{.State.Running}}"); st != "true" {
		t.Fatal("system prune touched a running container")
	}
}

func TestLogsOptions(t *testing.T) {
	e := newEnv(t)
	e.must("run", "--name", "lg", "busybox", "sh", "-c", "echo one; sleep 1.2; echo two >&2")
	out := e.run("logs", "-t", "lg")
	if !strings.Contains(out.stdout, "Z one") || !strings.Contains(out.stderr, "Z two") {
		t.Fatalf("logs -t: %s", out)
	}
	fields := strings.Fields(out.stderr)
	ts, err := time.Parse(time.RFC3339Nano, fields[0])
	if err != nil {
		t.Fatal(err)
	}
	since := e.run("logs", "--since", ts.Add(-time.Millisecond).Format(time.RFC3339Nano), "lg")
	if since.stdout != "" || since.stderr != "two\n" {
		t.Fatalf("logs --since: %s", since)
	}
	until := e.run("logs", "--until", ts.Add(-time.Millisecond).Format(time.RFC3339Nano), "lg")
	if until.stdout != "one\n" || until.stderr != "" {
		t.Fatalf("logs --until: %s", until)
	}
}
