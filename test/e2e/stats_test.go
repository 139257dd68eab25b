package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.must("run", "-d", "--name", "lim", "-m", "64m", "busybox", "sleep", "1000"))
	e.must("run", "-d", "--name", "free", "busybox", "sleep", "1000")

	if got := e.must("stats", "--no-stream", "--format", "{{.MemUsage}}", "lim"); !strings.HasSuffix(strings.TrimSpace(got), "/ 64MiB") {
		t.Fatalf("stats MemUsage of a 64m container: %q", got)
	}
	out := e.must("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "lim")
	f := strings.Fields(out)
	if len(f) != 2 || f[0] != "lim" {
		t.Fatalf("stats Name PIDs: %q", out)
	}
	if n, err := strconv.Atoi(f[1]); err != nil || n < 1 {
		t.Fatalf("stats PIDs = %q, want >= 1", f[1])
	}

	// The default table lists running containers with docker's columns.
	table := e.must("stats", "--no-stream")
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("stats table, want a header and 2 rows:\n%s", table)
	}
	for _, col := range []string{"CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("stats header %q lacks %q", lines[0], col)
		}
	}
	if !strings.Contains(table, id[:12]) || strings.Contains(table, id[:13]) {
		t.Errorf("stats table should show the truncated ID %s:\n%s", id[:12], table)
	}

	// json: one object per container with docker's field names.
	var row map[string]string
	if err := json.Unmarshal([]byte(e.must("stats", "--no-stream", "--format", "json", "free")), &row); err != nil {
		t.Fatalf("stats --format json: %v", err)
	}
	for _, k := range []string{"BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"} {
		if _, ok := row[k]; !ok {
			t.Errorf("stats json lacks %s: %v", k, row)
		}
	}
	if row["Container"] != "free" || !strings.HasSuffix(row["CPUPerc"], "%") {
		t.Errorf("stats json: %v", row)
	}

	if r := e.run("stats", "--no-stream", "nosuch"); r.code != 1 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Fatalf("stats of an unknown container: %s", r)
	}

	// A stopped container is left out by default, shown with zeros by -a.
	e.must("stop", "-t", "0", "free")
	if got := e.must("stats", "--no-stream", "--format", "{{.Name}}"); strings.TrimSpace(got) != "lim" {
		t.Fatalf("stats after stopping one: %q", got)
	}
	got := e.must("stats", "--no-stream", "-a", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}")
	if !strings.Contains(got, "free 0B / 0B 0\n") || !strings.Contains(got, "lim ") {
		t.Fatalf("stats -a: %q", got)
	}
}

func TestTop(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "sl", "busybox", "sleep", "1000")
	out := e.must("top", "sl")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("top, want a header and one process:\n%s", out)
	}
	if h := strings.Fields(lines[0]); strings.Join(h, " ") != "UID PID PPID C STIME TTY TIME CMD" {
		t.Fatalf("top header: %q", lines[0])
	}
	if !strings.Contains(lines[1], "sleep 1000") {
		t.Fatalf("top does not list sleep:\n%s", out)
	}
	pid := e.inspect("sl", "{{.State.Pid}}")
	if f := strings.Fields(lines[1]); len(f) < 2 || f[1] != pid {
		t.Fatalf("top PID column %q, want the container's pid %s", lines[1], pid)
	}

	// ps options after the container, and processes started by exec.
	e.must("exec", "-d", "sl", "sleep", "999")
	eventually(t, 10*time.Second, "top to list the exec'd process", func() bool {
		return strings.Contains(e.must("top", "sl", "-o", "pid,args"), "sleep 999")
	})
	if h := strings.Fields(strings.SplitN(e.must("top", "sl", "-o", "pid,comm"), "\n", 2)[0]); strings.Join(h, " ") != "PID COMMAND" {
		t.Fatalf("top -o pid,comm header: %q", h)
	}

	e.must("stop", "-t", "0", "sl")
	if r := e.run("top", "sl"); r.code != 1 || !strings.Contains(r.stderr, "is not running") {
		t.Fatalf("top of a stopped container: %s", r)
	}
}
