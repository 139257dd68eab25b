package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Create makes the cgroup in every hierarchy and writes the limits in res
// (nil for none). Directories that exist already are reused, so Create may
// be called again to change the limits; on failure it removes the
// directories it made and returns an error naming the control file that
// refused its value.
func (m *Manager) Create(res *specs.LinuxResources) error {
	if res == nil {
		res = &specs.LinuxResources{}
	}
	rules, err := parseDeviceRules(res.Devices)
	if err != nil {
		return err
	}
	// Check the resources before making anything; the plans are made
	// again once the directories exist to look at.
	if m.layout.mode == Unified {
		_, err = v2Writes(res, v2State{})
	} else {
		_, err = v1Writes(res, v1State{})
	}
	if err != nil {
		return err
	}

	var created []string
	if m.layout.mode == Unified {
		err = m.createV2(res, rules, &created)
	} else {
		err = m.createV1(res, rules, &created)
	}
	if err != nil {
		// Children were made after their parents: undo in reverse.
		for _, dir := range slices.Backward(created) {
			if rmErr := unix.Rmdir(dir); rmErr != nil && !errors.Is(rmErr, unix.ENOENT) {
				err = errors.Join(err, fmt.Errorf("cgroups: remove %s after failure: %w", dir, rmErr))
			}
		}
		return err
	}
	return nil
}

func (m *Manager) createV1(res *specs.LinuxResources, rules []deviceRule, created *[]string) error {
	for _, h := range m.layout.v1 {
		if err := mkdirTracked(h.mountpoint, m.path, created); err != nil {
			return err
		}
		if slices.Contains(h.controllers, "cpuset") {
			if err := fillCpusets(h.mountpoint, m.path); err != nil {
				return err
			}
		}
	}
	if m.layout.v2 != "" {
		// Hybrid: the v2 cgroup only tracks the processes.
		if err := mkdirTracked(m.layout.v2, m.path, created); err != nil {
			return err
		}
	}

	writes, err := v1Writes(res, m.v1State(res))
	if err != nil {
		return err
	}
	if len(rules) > 0 {
		writes = append(writes, v1DeviceWrites(rules)...)
	}
	return writeAll(writes, func(controller string) (string, error) {
		dir, ok := m.v1Dir(controller)
		if !ok {
			return "", fmt.Errorf("%w: no v1 hierarchy holds the %s controller", errMissingController, controller)
		}
		return dir, nil
	})
}

// v1State looks at what the v1 plan for res depends on.
func (m *Manager) v1State(res *specs.LinuxResources) v1State {
	var st v1State
	if res.Memory != nil && res.Memory.Swap != nil {
		if dir, ok := m.v1Dir("memory"); ok {
			if s, err := readFile(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
				if v, err := strconv.ParseInt(s, 10, 64); err == nil {
					st.memswLimit = &v
				}
			}
		}
	}
	if res.BlockIO != nil && res.BlockIO.Weight != nil {
		if dir, ok := m.v1Dir("blkio"); ok {
			st.blkioWeightFile = firstExisting(dir, "blkio.weight", "blkio.bfq.weight")
		}
	}
	return st
}

func (m *Manager) createV2(res *specs.LinuxResources, rules []deviceRule, created *[]string) error {
	dir := m.dirIn(m.layout.v2)
	// The controllers must be enabled in the subtree_control of every
	// ancestor, top down, before the cgroup's files for them appear.
	wantWrites, _ := v2Writes(res, v2State{}) // checked by Create already
	required := map[string]fileWrite{}        // controller -> first write needing it
	for _, w := range wantWrites {
		if _, seen := required[controllerOf(w.file)]; !seen {
			required[controllerOf(w.file)] = w
		}
	}
	parents := append([]string{"/"}, ancestors(m.path)...)
	for _, p := range parents {
		parent := filepath.Join(m.layout.v2, p)
		if p != "/" {
			if err := mkdirTracked(m.layout.v2, p, created); err != nil {
				return err
			}
		}
		if err := enableControllers(parent, dir, required); err != nil {
			return err
		}
	}
	if err := mkdirTracked(m.layout.v2, m.path, created); err != nil {
		return err
	}

	var st v2State
	if res.BlockIO != nil && res.BlockIO.Weight != nil {
		st.ioWeightFile = firstExisting(dir, "io.weight", "io.bfq.weight")
	}
	writes, err := v2Writes(res, st)
	if err != nil {
		return err
	}
	if err := writeAll(writes, func(string) (string, error) { return dir, nil }); err != nil {
		return err
	}
	if len(rules) > 0 {
		return setDeviceFilter(dir, rules)
	}
	return nil
}

// enableControllers enables in parent's cgroup.subtree_control the
// controllers the limits need, failing when parent does not offer one,
// and those stats read, when it does.
func enableControllers(parent, leaf string, required map[string]fileWrite) error {
	available, err := readFile(filepath.Join(parent, "cgroup.controllers"))
	if err != nil {
		return classify(err)
	}
	enabled, err := readFile(filepath.Join(parent, "cgroup.subtree_control"))
	if err != nil {
		return classify(err)
	}
	// Controllers stats read (memory.stat, cpu.stat, pids.current,
	// io.stat) are enabled for every container when offered, so that a
	// container without limits has stats too.
	want := []string{"cpu", "io", "memory", "pids"}
	for c := range required {
		if !slices.Contains(want, c) {
			want = append(want, c)
		}
	}
	slices.Sort(want)
	for _, c := range want {
		if slices.Contains(strings.Fields(enabled), c) {
			continue
		}
		w, isRequired := required[c]
		if !slices.Contains(strings.Fields(available), c) {
			if isRequired {
				return classify(&FileError{Op: "write", Path: filepath.Join(leaf, w.file), Value: w.value,
					Err: fmt.Errorf("%w: %s does not offer the %s controller (cgroup.controllers: %q)", errMissingController, parent, c, available)})
			}
			continue
		}
		err := writeFile(filepath.Join(parent, "cgroup.subtree_control"), "+"+c)
		if err != nil && isRequired {
			return classify(fmt.Errorf("%w (needed for %s)", err, w.file))
		}
	}
	return nil
}

// ancestors lists the proper ancestors of a cgroup path below the root:
// "/a/b/c" -> ["/a", "/a/b"].
func ancestors(path string) []string {
	var out []string
	for p := filepath.Dir(path); p != "/"; p = filepath.Dir(p) {
		out = append(out, p)
	}
	slices.Reverse(out)
	return out
}

// mkdirTracked makes the cgroup path under mountpoint level by level,
// recording each directory it made (not those that existed) in created.
func mkdirTracked(mountpoint, path string, created *[]string) error {
	levels := append(ancestors(path), path)
	for _, p := range levels {
		dir := filepath.Join(mountpoint, p)
		err := unix.Mkdir(dir, 0o755)
		switch {
		case err == nil:
			*created = append(*created, dir)
		case errors.Is(err, unix.EEXIST):
		default:
			return classify(&FileError{Op: "mkdir", Path: dir, Err: err})
		}
	}
	return nil
}

// fillCpusets gives every level of path in the v1 cpuset hierarchy its
// parent's CPUs and memory nodes where it has none: a new cpuset cgroup
// starts empty, and no process can join an empty one.
func fillCpusets(mountpoint, path string) error {
	parent := mountpoint
	for _, p := range append(ancestors(path), path) {
		dir := filepath.Join(mountpoint, p)
		for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := readFile(filepath.Join(dir, file))
			if err != nil {
				return classify(err)
			}
			if cur != "" {
				continue
			}
			from, err := readFile(filepath.Join(parent, file))
			if err != nil {
				return classify(err)
			}
			if err := writeFile(filepath.Join(dir, file), from); err != nil {
				return classify(err)
			}
		}
		parent = dir
	}
	return nil
}

// writeAll writes the planned values in order into the directories dirFor
// gives for each controller.
func writeAll(writes []fileWrite, dirFor func(controller string) (string, error)) error {
	write := func(w fileWrite) error {
		dir, err := dirFor(controllerOf(w.file))
		if err != nil {
			if w.optional {
				return nil
			}
			return classify(&FileError{Op: "write", Path: w.file, Value: w.value, Err: err})
		}
		err = writeFile(filepath.Join(dir, w.file), w.value)
		if err != nil && w.optional && errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	for i := 0; i < len(writes); i++ {
		w := writes[i]
		err := write(w)
		if err != nil && w.swapOnEINVAL && i+1 < len(writes) && errors.Is(err, unix.EINVAL) {
			i++
			if err = write(writes[i]); err == nil {
				err = write(w)
			}
		}
		if err != nil {
			return classify(err)
		}
	}
	return nil
}

// firstExisting returns the first of the files that exists in dir, "" for
// none.
func firstExisting(dir string, files ...string) string {
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return f
		}
	}
	return ""
}

// errMissingController is the cause given when no hierarchy, or no parent
// cgroup, offers the controller a control file belongs to.
var errMissingController = errdefs.NotImplemented("controller not available")
