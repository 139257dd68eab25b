package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestDetachedLifecycle(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.must("run", "-d", "--name", "web", "-e", "A=1", "-l", "tier=front", "busybox",
		"sh", "-c", "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo line$i; sleep 0.1; done"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want a 64-hex ID", id)
	}
	ps := e.must("ps")
	if !strings.Contains(ps, "CONTAINER ID") || !strings.Contains(ps, "web") || !strings.Contains(ps, "Up ") {
		t.Fatalf("ps:\n%s", ps)
	}
	if got := e.must("ps", "-q", "--filter", "label=tier=front"); strings.TrimSpace(got) != id[:12] {
		t.Fatalf("ps label filter: %q", got)
	}
	if got := e.must("ps", "--format", "{{.Names}} {{.State}}"); strings.TrimSpace(got) != "web running" {
		t.Fatalf("ps --format: %q", got)
	}
	eventually(t, 10*time.Second, "five log lines", func() bool {
		return strings.Count(e.must("logs", "web"), "\n") >= 5
	})
	if out := e.must("logs", "--tail", "2", "web"); strings.Count(out, "\n") != 2 {
		t.Fatalf("logs --tail 2: %q", out)
	}
	if out := e.must("exec", "web", "sh", "-c", "echo $A"); out != "1\n" {
		t.Fatalf("exec env: %q", out)
	}
	if r := e.run("exec", "web", "sh", "-c", "exit 4"); r.code != 4 {
		t.Fatalf("exec exit code: %s", r)
	}
	// logs -f ends when the container stops.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	follow := e.command(ctx, "logs", "-f", "--tail", "1", "web")
	var fout bytes.Buffer
	follow.Stdout = &fout
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	e.must("stop", "web")
	if err := follow.Wait(); err != nil {
		t.Fatalf("logs -f: %v", err)
	}
	if !strings.Contains(fout.String(), "line") {
		t.Fatalf("logs -f printed %q", fout.String())
	}
	if st := e.inspect("web", "{{.State.Status}} {{.State.ExitCode}}"); st != "exited 0" {
		t.Fatalf("after stop: %s", st)
	}
	if r := e.run("rm", "web"); r.code != 0 {
		t.Fatalf("rm of a stopped container: %s", r)
	}
	e.must("run", "-d", "--name", "web", "busybox", "sleep", "1000")
	if r := e.run("rm", "web"); r.code == 0 || !strings.Contains(r.stderr, "Stop the container before attempting removal or force remove") {
		t.Fatalf("rm of a running container: %s", r)
	}
	if r := e.run("run", "-d", "--name", "web", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "is already in use") {
		t.Fatalf("name conflict: %s", r)
	}
	e.must("stop", "-t", "1", "web")
	e.must("start", "web")
	if st := e.inspect("web", "{{.State.Running}}"); st != "true" {
		t.Fatalf("after start: running=%s", st)
	}
	e.must("rm", "-f", "web")
	if r := e.run("inspect", "web"); r.code == 0 {
		t.Fatal("inspect of a removed container succeeded")
	}
}

func TestWaitAndAttachedStdin(t *testing.T) {
	e := newEnv(t)
	r := e.runIn([]byte("piped input\n"), "run", "--rm", "-i", "busybox", "cat")
	if r.code != 0 || r.stdout != "piped input\n" {
		t.Fatalf("run -i: %s", r)
	}
	e.must("run", "-d", "--name", "w1", "busybox", "sh", "-c", "sleep 0.5; exit 7")
	if out := e.must("wait", "w1"); strings.TrimSpace(out) != "7" {
		t.Fatalf("wait printed %q", out)
	}
	// A container killed from outside exits 128+signal.
	e.must("run", "-d", "--name", "k1", "busybox", "sleep", "100")
	e.must("kill", "k1")
	eventually(t, 10*time.Second, "k1 to exit", func() bool { return e.inspect("k1", "{{.State.Status}}") == "exited" })
	if code := e.inspect("k1", "{{.State.ExitCode}}"); code != "137" {
		t.Fatalf("kill -9: exit code %s", code)
	}
}

func TestRestartPolicy(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 5")
	eventually(t, 30*time.Second, "two restarts then exit", func() bool {
		return e.inspect("flaky", "{{.State.Status}} {{.RestartCount}}") == "exited 2"
	})
	if code := e.inspect("flaky", "{{.State.ExitCode}}"); code != "5" {
		t.Fatalf("exit code %s", code)
	}
	e.must("run", "-d", "--name", "forever", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2")
	eventually(t, 30*time.Second, "an always container restarting", func() bool {
		n, _ := strconv.Atoi(e.inspect("forever", "{{.RestartCount}}"))
		return n >= 2
	})
	// A manual stop is final for "always".
	e.must("stop", "forever")
	n1 := e.inspect("forever", "{{.RestartCount}}")
	time.Sleep(time.Second) // nothing to poll for: asserting that nothing happens
	if st := e.inspect("forever", "{{.State.Status}} {{.RestartCount}}"); st != "exited "+n1 {
		t.Fatalf("after stop: %s (count was %s)", st, n1)
	}
}

func TestResourceLimits(t *testing.T) {
	e := newEnv(t)
	// OOM: 137 and OOMKilled.
	r := e.run("run", "--name", "oom", "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c", "x=a; while true; do x=$x$x; done")
	if r.code != 137 {
		t.Fatalf("OOM run: %s", r)
	}
	if st := e.inspect("oom", "{{.State.OOMKilled}} {{.State.ExitCode}}"); st != "true 137" {
		t.Fatalf("OOM state: %s", st)
	}
	// A fork bomb stays under --pids-limit.
	bomb := strings.TrimSpace(e.must("run", "-d", "--pids-limit", "20", "busybox", "sh", "-c",
		"sh -c 'for i in $(seq 1 100); do sleep 60 & done'; echo spawned; sleep 60"))
	eventually(t, 20*time.Second, "the fork bomb to hit its limit", func() bool {
		return strings.Contains(e.must("logs", bomb), "spawned")
	})
	if n, _ := strconv.Atoi(readCgroup(t, "pids", bomb, "pids.current", "pids.current")); n == 0 || n > 20 {
		t.Fatalf("pids-limit 20: %d processes", n)
	}
	if logs := e.run("logs", bomb); !strings.Contains(logs.stderr, "can't fork") {
		t.Fatalf("no fork failure in the logs: %s", logs)
	}
	e.must("rm", "-f", bomb)
	// CPU quota lands in the cgroup.
	id := strings.TrimSpace(e.must("run", "-d", "--cpus", "0.5", "busybox", "sleep", "100"))
	quota := readCgroup(t, "cpu", id, "cpu.cfs_quota_us", "cpu.max")
	if !strings.HasPrefix(quota, "50000") {
		t.Fatalf("cpu quota %q", quota)
	}
}

// readCgroup reads a container's cgroup file, v1 name first, then v2.
func readCgroup(t *testing.T, controller, id, v1, v2 string) string {
	t.Helper()
	for _, p := range []string{
		filepath.Join("/sys/fs/cgroup", controller, "berth", id, v1),
		filepath.Join("/sys/fs/cgroup/berth", id, v2),
	} {
		if b, err := os.ReadFile(p); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("no cgroup file for %s", id)
	return ""
}

func TestLogRotation(t *testing.T) {
	e := newEnv(t)
	e.must("run", "--name", "chatty", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox",
		"sh", "-c", "for i in $(seq 1 400); do echo line-$i; done")
	logPath := e.inspect("chatty", "{{.LogPath}}")
	files, _ := filepath.Glob(logPath + "*")
	if len(files) != 3 {
		t.Fatalf("log files %v, want 3", files)
	}
	for _, f := range files {
		if fi, _ := os.Stat(f); fi.Size() > 1024+200 {
			t.Fatalf("%s is %d bytes, over max-size", f, fi.Size())
		}
	}
	out := e.must("logs", "chatty")
	if !strings.HasSuffix(out, "line-400\n") {
		t.Fatalf("logs end with %q", out[max(0, len(out)-40):])
	}
	if r := e.run("run", "--log-opt", "max-file=2", "busybox", "true"); r.code != 125 {
		t.Fatalf("max-file without max-size: %s", r)
	}
}

func TestMonitorAndCLICrashes(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "victim", "busybox", "sleep", "1000")
	pid := monitorPid(t, e, "victim")
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, 10*time.Second, "the dead monitor noticed", func() bool {
		return e.inspect("victim", "{{.State.Status}}") == "exited"
	})
	if r := e.run("rm", "victim"); r.code != 0 {
		t.Fatalf("rm after monitor crash: %s", r)
	}

	// kill -9 of an attached `run`: the container goes on, and a later
	// command sees it and can remove it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := e.command(ctx, "run", "--name", "orphan", "busybox", "sleep", "1000")
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the container running", func() bool {
		return strings.Contains(e.must("ps"), "orphan")
	})
	cli.Process.Kill()
	cli.Wait()
	if st := e.inspect("orphan", "{{.State.Status}}"); st != "running" {
		t.Fatalf("after CLI kill: %s", st)
	}
	e.must("rm", "-f", "orphan")
	assertNoLeftovers(t, e)
}

func monitorPid(t *testing.T, e *env, name string) int {
	t.Helper()
	id := e.inspect(name, "{{.Id}}")
	raw, err := os.ReadFile("/proc/" + e.inspect(name, "{{.State.Pid}}") + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The container's init is a child of its monitor (a subreaper).
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	ppid, _ := strconv.Atoi(f[1])
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
	if !strings.Contains(string(cmdline), "_monitor") || !strings.Contains(string(cmdline), id) {
		t.Fatalf("parent %d of the container is %q, not its monitor", ppid, cmdline)
	}
	return ppid
}

// assertNoLeftovers checks that no container mount or runtime state remains.
func assertNoLeftovers(t *testing.T, e *env) {
	t.Helper()
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		// The built-in runtime's read-only copy of the binary stays, and
		// so does the shared mount the network namespaces go on (not
		// the namespaces themselves).
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == filepath.Join(e.runroot, "netns") {
			continue
		}
		if strings.Contains(line, e.runroot) && !strings.Contains(line, "/exe:ro/") {
			t.Fatalf("mounts left under %s: %s", e.runroot, line)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(e.runroot, "containers"))
	if len(ents) != 0 {
		t.Fatalf("runtime dirs left: %v", ents)
	}
}

func TestConcurrentRunAndRemove(t *testing.T) {
	e := newEnv(t)
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.run("run", "-d", "--name", fmt.Sprintf("c%02d", i), "busybox", "sleep", "1000")
			if r.code != 0 {
				errs <- r.String()
				return
			}
			ids[i] = strings.TrimSpace(r.stdout)
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Fatal(msg)
	}
	listed := strings.Fields(e.must("ps", "-q", "--no-trunc"))
	if len(listed) != n {
		t.Fatalf("ps lists %d containers, want %d", len(listed), n)
	}
	seen := map[string]bool{}
	for _, id := range listed {
		if seen[id] {
			t.Fatalf("duplicate %s", id)
		}
		seen[id] = true
	}
	var wg2 sync.WaitGroup
	for i := range n {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			if r := e.run("rm", "-f", fmt.Sprintf("c%02d", i)); r.code != 0 {
				t.Errorf("rm -f c%02d: %s", i, r)
			}
		}()
	}
	wg2.Wait()
	if out := strings.TrimSpace(e.must("ps", "-aq")); out != "" {
		t.Fatalf("containers left: %s", out)
	}
	assertNoLeftovers(t, e)
}

func TestHostileLayerIsRefused(t *testing.T) {
	e := newEnv(t)
	outside := filepath.Join(e.dir, "outside")
	tests := []struct {
		name    string
		entries []tar.Header
	}{
		{"dot-dot path", []tar.Header{{Name: "../../../" + strings.TrimPrefix(outside, "/") + "/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}}},
		{"through symlink", []tar.Header{
			{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: outside, Mode: 0o777},
			{Name: "evil/pwned", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
		}},
		{"hardlink outside", []tar.Header{{Name: "link", Typeflag: tar.TypeLink, Linkname: "../../../../../../etc/passwd", Mode: 0o644}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.MkdirAll(outside, 0o755)
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range tc.entries {
				h := h
				tw.WriteHeader(&h)
				if h.Size > 0 {
					tw.Write([]byte("x"))
				}
			}
			tw.Close()
			r := e.runIn(buf.Bytes(), "import", "-", "hostile:1")
			if r.code != 1 {
				t.Fatalf("hostile import: %s", r)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("wrote outside the snapshot: %v", ents)
			}
			if r := e.run("image", "inspect", "hostile:1"); r.code == 0 {
				t.Fatal("hostile image was recorded")
			}
		})
	}
}

func TestImageCommands(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.must("images", "-q", "busybox"))
	e.must("tag", "busybox", "mine/box:v1")
	out := e.must("images")
	if !strings.Contains(out, "REPOSITORY") || !strings.Contains(out, "mine/box") || !strings.Contains(out, "v1") {
		t.Fatalf("images:\n%s", out)
	}
	if got := strings.TrimSpace(e.must("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=mine/*")); got != "mine/box:v1" {
		t.Fatalf("reference filter: %q", got)
	}
	// Deleting by ID with two tags needs -f; by tag it only untags.
	if r := e.run("rmi", id); r.code == 0 || !strings.Contains(r.stderr, "must be forced") {
		t.Fatalf("rmi of a multiply tagged image: %s", r)
	}
	if out := e.must("rmi", "mine/box:v1"); strings.TrimSpace(out) != "Untagged: mine/box:v1" {
		t.Fatalf("rmi tag: %q", out)
	}
	// An image in use is kept.
	e.must("create", "--name", "user", "busybox", "true")
	if r := e.run("rmi", "busybox"); r.code == 0 || !strings.Contains(r.stderr, "is using its referenced image") {
		t.Fatalf("rmi of an image in use: %s", r)
	}
	e.must("rm", "user")
	out = e.must("rmi", "busybox")
	if !strings.Contains(out, "Untagged: busybox:latest") || !strings.Contains(out, "Deleted: sha256:") {
		t.Fatalf("rmi: %q", out)
	}
	// The layer went with the last image that used it.
	snaps, _ := os.ReadDir(filepath.Join(e.root, "snapshots"))
	links, _ := os.ReadDir(filepath.Join(e.root, "snapshots", "l"))
	if len(snaps) != 1 || snaps[0].Name() != "l" || len(links) != 0 {
		t.Fatalf("snapshots left: %v, links %v", snaps, links)
	}
}
