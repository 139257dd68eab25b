package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Apply moves the process pid into the cgroup in every hierarchy.
func (m *Manager) Apply(pid int) error {
	if pid <= 0 {
		return errdefs.InvalidArgument("cgroups: invalid pid %d", pid)
	}
	value := strconv.Itoa(pid)
	for _, dir := range m.dirs() {
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), value); err != nil {
			return classify(err)
		}
	}
	return nil
}

// Pids lists the processes in the cgroup and in its descendants, sorted.
func (m *Manager) Pids() ([]int, error) {
	dir, err := m.processDir()
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	if err := collectPids(dir, seen); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, errdefs.NotFound("cgroups: cgroup %s does not exist: %w", m.path, err)
		}
		return nil, classify(err)
	}
	pids := make([]int, 0, len(seen))
	for pid := range seen {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids, nil
}

// collectPids adds the processes of the cgroup dir and its descendants.
func collectPids(dir string, seen map[int]bool) error {
	procs, err := readFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return err
	}
	for _, line := range strings.Fields(procs) {
		pid, err := strconv.Atoi(line)
		if err != nil {
			return fmt.Errorf("cgroups: %s/cgroup.procs: bad pid %q", dir, line)
		}
		seen[pid] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return &FileError{Op: "read", Path: dir, Err: unwrapPathError(err)}
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		// A child removed while we look has no processes left to report.
		if err := collectPids(filepath.Join(dir, e.Name()), seen); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// Destroy removes the cgroup, descendants first, in every hierarchy. A
// hierarchy where it does not exist is fine. The kernel refuses (EBUSY) to
// remove a cgroup until its last process has exited, which lags the exit
// seen by wait(2) a little, so removal is retried until ctx ends.
func (m *Manager) Destroy(ctx context.Context) error {
	var errs []error
	for _, dir := range m.dirs() {
		if err := removeTree(ctx, dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeTree removes the cgroup dir and its descendants. Only directories
// are removed: a cgroup's control files go with it.
func removeTree(ctx context.Context, dir string) error {
	// Mostly there are no children and no process left: the rmdir alone
	// does it, without listing the control files of each hierarchy.
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return classify(&FileError{Op: "read", Path: dir, Err: unwrapPathError(err)})
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(ctx, filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	var last error
	err = poll(ctx, func() (bool, error) {
		last = unix.Rmdir(dir)
		switch {
		case last == nil, errors.Is(last, unix.ENOENT):
			return true, nil
		case errors.Is(last, unix.EBUSY):
			return false, nil
		}
		return false, classify(&FileError{Op: "rmdir", Path: dir, Err: last})
	})
	if err != nil && errors.Is(last, unix.EBUSY) {
		return errdefs.Conflict("cgroups: remove %s: %v (processes left in it?): %w", dir, last, err)
	}
	return err
}

// poll calls done until it reports true or fails, sleeping between calls
// from 1ms doubling up to 50ms, until ctx ends.
func poll(ctx context.Context, done func() (bool, error)) error {
	const first, most = time.Millisecond, 50 * time.Millisecond
	delay := first
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, most)
	}
}

// JoinThread moves the calling thread (not its process) into the cgroup
// of every v1 hierarchy, by writing "0" to each `tasks` file. Moving
// oneself that way is the one migration for which the kernel skips its
// global threadgroup lock, whose RCU grace period makes a write to
// cgroup.procs cost milliseconds per hierarchy. A runtime's init calls it
// on the thread that will execve the container's command, which is then
// the process's only thread. The v2 cgroup is not joined here: see
// CloneInto.
func (m *Manager) JoinThread() error {
	for _, h := range m.layout.v1 {
		if err := writeFile(filepath.Join(m.dirIn(h.mountpoint), "tasks"), "0"); err != nil {
			return classify(err)
		}
	}
	return nil
}

// CloneInto returns the cgroup's v2 directory, for the kernel to start a
// process in it directly (clone3 with CLONE_INTO_CGROUP), and false on a
// v1-only host.
func (m *Manager) CloneInto() (string, bool) {
	if m.layout.v2 == "" {
		return "", false
	}
	return m.dirIn(m.layout.v2), true
}
