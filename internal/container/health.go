package container

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/runtime"
)

// Docker's health check defaults and limits.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
	maxHealthLog          = 5
	maxHealthOutput       = 4096
	// healthDrainGrace bounds how long a finished check's output is read.
	healthDrainGrace = 500 * time.Millisecond
)

func healthDisabled(hc *image.Healthcheck) bool {
	return hc == nil || len(hc.Test) == 0 || hc.Test[0] == "NONE"
}

// healthArgv turns a HEALTHCHECK test into a command line.
func healthArgv(test []string) []string {
	switch test[0] {
	case "CMD":
		return test[1:]
	case "CMD-SHELL":
		if len(test) > 1 {
			return []string{"/bin/sh", "-c", test[1]}
		}
	}
	return nil
}

// healthLoop runs the container's health check until ctx ends, recording
// results in State.Health and emitting health_status events on changes.
func (m *monitor) healthLoop(ctx context.Context) {
	hc := m.c.Config.Healthcheck
	if healthDisabled(hc) {
		return
	}
	argv := healthArgv(hc.Test)
	if len(argv) == 0 {
		return
	}
	interval := orDefault(hc.Interval, defaultHealthInterval)
	timeout := orDefault(hc.Timeout, defaultHealthTimeout)
	retries := hc.Retries
	if retries <= 0 {
		retries = defaultHealthRetries
	}
	startedAt := time.Now()
	for {
		wait := interval
		if hc.StartInterval > 0 && time.Since(startedAt) < hc.StartPeriod {
			wait = hc.StartInterval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		res := m.probe(ctx, argv, timeout)
		if ctx.Err() != nil {
			return
		}
		inStartPeriod := time.Since(startedAt) < hc.StartPeriod
		var changedTo string
		m.s.update(context.Background(), m.id, func(c *Container) error {
			h := c.State.Health
			if h == nil {
				h = &Health{Status: "starting"}
				c.State.Health = h
			}
			before := h.Status
			h.Log = append(h.Log, res)
			if len(h.Log) > maxHealthLog {
				h.Log = h.Log[len(h.Log)-maxHealthLog:]
			}
			if res.ExitCode == 0 {
				h.FailingStreak = 0
				h.Status = "healthy"
			} else if !inStartPeriod || h.Status != "starting" {
				h.FailingStreak++
				if h.FailingStreak >= retries {
					h.Status = "unhealthy"
				}
			}
			if h.Status != before {
				changedTo = h.Status
			}
			return nil
		})
		if changedTo != "" {
			m.s.Emit(context.Background(), Event{Type: "container", Action: "health_status: " + changedTo, ID: m.id,
				Attributes: map[string]string{"name": m.c.ShortName(), "image": m.c.Config.Image}, Labels: m.c.Config.Labels})
		}
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// probe runs one health check command inside the container.
func (m *monitor) probe(ctx context.Context, argv []string, timeout time.Duration) HealthLog {
	res := HealthLog{Start: time.Now()}
	proc, err := m.processSpec(argv)
	if err != nil {
		res.End, res.ExitCode, res.Output = time.Now(), -1, err.Error()
		return res
	}
	r, w, err := os.Pipe()
	if err != nil {
		res.End, res.ExitCode, res.Output = time.Now(), -1, err.Error()
		return res
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pidFile := filepath.Join(m.bundle, "health.pid")
	os.Remove(pidFile)
	cmd, err := m.rt.Exec(pctx, m.id, proc, pidFile, runtime.IO{Stdin: devnull, Stdout: w, Stderr: w}, false)
	w.Close()
	if err != nil {
		r.Close()
		res.End, res.ExitCode, res.Output = time.Now(), -1, err.Error()
		return res
	}
	// Past its timeout, or once the container's run ends, the check
	// itself is killed; its parent (the exec helper or the runtime)
	// then reaps it and exits. Killing that parent instead would orphan
	// the check to the monitor.
	waited := make(chan struct{})
	defer close(waited)
	go func() {
		select {
		case <-pctx.Done():
			killCheck(pidFile, cmd.Process.Pid)
		case <-waited:
		}
	}()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			if out.Len() < maxHealthOutput {
				out.Write(buf[:min(n, maxHealthOutput-out.Len())])
			}
			if err != nil {
				close(copied)
				return
			}
		}
	}()
	werr := cmd.Wait()
	// The check has exited, but its output may still sit in the pipe, and
	// a process it left behind may hold the write end open: drain what is
	// there, then give up on the rest instead of waiting forever.
	r.SetReadDeadline(time.Now().Add(healthDrainGrace))
	<-copied
	r.Close()
	res.End = time.Now()
	res.Output = out.String()
	switch {
	case pctx.Err() == context.DeadlineExceeded:
		res.ExitCode = -1
		res.Output = fmt.Sprintf("Health check exceeded timeout (%s)", timeout)
	case werr == nil:
		res.ExitCode = 0
	case cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 0:
		res.ExitCode = 0
	default:
		res.ExitCode = 1
	}
	return res
}

// killCheck kills the check process named by pidFile, if it is still the
// child of parent (so that its pid cannot have been reused).
func killCheck(pidFile string, parent int) {
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	// Checked after the pidfd is open: it names this process for good.
	if ppid, err := parentOf(pid); err != nil || ppid != parent {
		return
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}

// parentOf reads pid's parent from /proc.
func parentOf(pid int) (int, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no parent of %d in /proc", pid)
}

// processSpec is the container's own process (user, env, cwd) running argv.
func (m *monitor) processSpec(argv []string) (*specs.Process, error) {
	p, err := runtime.ReadBundleProcess(m.bundle)
	if err != nil {
		return nil, err
	}
	p.Args = argv
	p.Terminal = false
	p.ConsoleSize = nil
	return p, nil
}
