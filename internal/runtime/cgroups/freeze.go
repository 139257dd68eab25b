package cgroups

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// v1 freezer.state values.
const (
	v1Frozen = "FROZEN"
	v1Thawed = "THAWED"
)

// rewriteEvery is how many polls of a v1 freezer stuck in FREEZING pass
// before FROZEN is written again: the kernel freezes the tasks it can on
// each write and leaves the state FREEZING when one is busy (in a vfork or
// an uninterruptible sleep), and a later write picks up the rest.
const rewriteEvery = 10

// Freeze stops every process in the cgroup and waits until the kernel
// reports them all frozen. If ctx ends first the cgroup is thawed again
// and ctx's error returned, so a failed Freeze leaves nothing half frozen.
func (m *Manager) Freeze(ctx context.Context) error {
	if m.layout.mode == Unified {
		dir := m.dirIn(m.layout.v2)
		if err := writeFile(filepath.Join(dir, "cgroup.freeze"), "1"); err != nil {
			return classify(err)
		}
		if err := poll(ctx, func() (bool, error) { return v2FrozenIs(dir, true) }); err != nil {
			_ = writeFile(filepath.Join(dir, "cgroup.freeze"), "0")
			return freezeFailed(dir, err)
		}
		return nil
	}

	state, err := m.freezerState()
	if err != nil {
		return err
	}
	if err := writeFile(state, v1Frozen); err != nil {
		return classify(err)
	}
	polls := 0
	err = poll(ctx, func() (bool, error) {
		s, err := readFile(state)
		if err != nil || s == v1Frozen {
			return err == nil, err
		}
		if polls++; polls%rewriteEvery == 0 {
			if err := writeFile(state, v1Frozen); err != nil {
				return false, err
			}
		}
		return false, nil
	})
	if err != nil {
		_ = writeFile(state, v1Thawed)
		return freezeFailed(filepath.Dir(state), err)
	}
	return nil
}

// Thaw resumes the cgroup's processes and waits until the kernel reports
// the cgroup thawed (it stays frozen while a frozen ancestor holds it).
func (m *Manager) Thaw(ctx context.Context) error {
	if m.layout.mode == Unified {
		dir := m.dirIn(m.layout.v2)
		if err := writeFile(filepath.Join(dir, "cgroup.freeze"), "0"); err != nil {
			return classify(err)
		}
		if err := poll(ctx, func() (bool, error) { return v2FrozenIs(dir, false) }); err != nil {
			return thawFailed(dir, err)
		}
		return nil
	}

	state, err := m.freezerState()
	if err != nil {
		return err
	}
	if err := writeFile(state, v1Thawed); err != nil {
		return classify(err)
	}
	err = poll(ctx, func() (bool, error) {
		s, err := readFile(state)
		return err == nil && s == v1Thawed, err
	})
	if err != nil {
		return thawFailed(filepath.Dir(state), err)
	}
	return nil
}

// Frozen reports whether the kernel reports the cgroup frozen (a freeze
// still in progress is not frozen).
func (m *Manager) Frozen() (bool, error) {
	if m.layout.mode == Unified {
		frozen, err := v2Frozen(m.dirIn(m.layout.v2))
		return frozen, classify(err)
	}
	state, err := m.freezerState()
	if err != nil {
		return false, err
	}
	s, err := readFile(state)
	if err != nil {
		return false, classify(err)
	}
	return s == v1Frozen, nil
}

// freezerState is the cgroup's v1 freezer.state file.
func (m *Manager) freezerState() (string, error) {
	dir, ok := m.v1Dir("freezer")
	if !ok {
		return "", errdefs.NotImplemented("cgroups: the v1 freezer controller is not mounted: cannot freeze or thaw")
	}
	return filepath.Join(dir, "freezer.state"), nil
}

// v2FrozenIs is a poll condition: whether the cgroup's frozen state is want.
func v2FrozenIs(dir string, want bool) (bool, error) {
	frozen, err := v2Frozen(dir)
	return err == nil && frozen == want, err
}

// v2Frozen reads the "frozen" key of cgroup.events, which the kernel sets
// once every process has stopped (cgroup.freeze only says what was asked).
func v2Frozen(dir string) (bool, error) {
	events, err := readFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(events, "\n") {
		if key, value, ok := strings.Cut(line, " "); ok && key == "frozen" {
			return value == "1", nil
		}
	}
	return false, &FileError{Op: "read", Path: filepath.Join(dir, "cgroup.events"),
		Err: errors.New(`no "frozen" key: the kernel is too old to freeze cgroup v2 (5.2 or later needed)`)}
}

func freezeFailed(dir string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errdefs.Unavailable("cgroups: freeze %s: the processes did not all stop in time (thawed again): %w", dir, err)
	}
	return classify(fmt.Errorf("cgroups: freeze %s: %w", dir, err))
}

func thawFailed(dir string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errdefs.Unavailable("cgroups: thaw %s: still frozen (is an ancestor frozen?): %w", dir, err)
	}
	return classify(fmt.Errorf("cgroups: thaw %s: %w", dir, err))
}
