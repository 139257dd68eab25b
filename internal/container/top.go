package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Top lists the processes of a running container as docker's top does: the
// host's ps runs with psArgs (default -ef) and only the rows whose PID
// column holds one of the container's processes are kept. titles are ps's
// column headers; each process has one value per title, the last column
// (usually the command line) taking the rest of the row.
func (s *Service) Top(ctx context.Context, ref string, psArgs []string) (titles []string, procs [][]string, err error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	if c.State.Restarting {
		return nil, nil, errdefs.Conflict("Container %s is restarting, wait until the container is running", c.ID)
	}
	if !c.State.Running {
		return nil, nil, errdefs.Conflict("Container %s is not running", c.ID)
	}
	pids, err := s.runtimeFor(c).Ps(ctx, c.ID)
	if err != nil {
		if now, gerr := s.Get(ctx, c.ID); gerr == nil && !now.State.Running {
			return nil, nil, errdefs.Conflict("Container %s is not running", c.ID)
		}
		return nil, nil, err
	}
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := runPs(ctx, psArgs, pids)
	if err != nil {
		return nil, nil, err
	}
	return parsePs(out, pids)
}

// runPs runs the host's ps. It first asks ps for the container's pids only
// (procps' -q, quick and independent of the host's process count); some
// options cannot be combined with -q (forest listings) and other ps
// implementations lack it, so on failure it runs ps with psArgs alone.
func runPs(ctx context.Context, psArgs []string, pids []int) ([]byte, error) {
	if len(pids) > 0 {
		list := make([]string, len(pids))
		for i, p := range pids {
			list[i] = strconv.Itoa(p)
		}
		args := append(append([]string(nil), psArgs...), "-q", strings.Join(list, ","))
		if out, err := exec.CommandContext(ctx, "ps", args...).Output(); err == nil {
			return out, nil
		}
	}
	cmd := exec.CommandContext(ctx, "ps", psArgs...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, errdefs.InvalidArgument("Error running ps %s: %v: %s", strings.Join(psArgs, " "), err, strings.TrimSpace(stderr.String()))
		}
		return nil, fmt.Errorf("running ps: %w", err)
	}
	return out, nil
}

// parsePs keeps the rows of ps output whose PID column is one of pids.
func parsePs(out []byte, pids []int) (titles []string, procs [][]string, err error) {
	lines := strings.Split(string(out), "\n")
	titles = strings.Fields(lines[0])
	pidCol := -1
	for i, t := range titles {
		if t == "PID" {
			pidCol = i
			break
		}
	}
	if pidCol < 0 {
		return nil, nil, errdefs.InvalidArgument("Couldn't find PID field in ps output")
	}
	want := make(map[int]bool, len(pids))
	for _, p := range pids {
		want[p] = true
	}
	procs = [][]string{}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if pidCol >= len(f) {
			return nil, nil, fmt.Errorf("unexpected ps output line %q", line)
		}
		pid, err := strconv.Atoi(f[pidCol])
		if err != nil {
			return nil, nil, fmt.Errorf("unexpected pid %q in ps output: %w", f[pidCol], err)
		}
		if !want[pid] {
			continue
		}
		// The last column (the command line) may hold spaces: it takes the
		// rest of the row. A row with an empty trailing column is padded.
		row := make([]string, len(titles))
		n := len(titles) - 1
		if len(f) <= n {
			copy(row, f)
		} else {
			copy(row, f[:n])
			row[n] = strings.Join(f[n:], " ")
		}
		procs = append(procs, row)
	}
	return titles, procs, nil
}
