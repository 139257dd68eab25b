package cgroups

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats is one reading of a cgroup's counters: cumulative ones (CPU time,
// I/O bytes) and current ones (memory, pids). Limits of 0 mean none.
//
// The counters are read by hand rather than through containerd/cgroups: a
// reading is a dozen small files in two well-documented layouts, and the
// library would add its protobuf metrics types to every binary.
type Stats struct {
	// CPUUsage is the CPU time used by the cgroup's processes, in ns.
	CPUUsage uint64
	// MemoryRaw is memory.usage_in_bytes (v1) or memory.current (v2),
	// page cache included.
	MemoryRaw uint64
	// MemoryLimit is the limit as the kernel reports it (0 for v2's
	// "max"; v1 reports its page-aligned maximum).
	MemoryLimit uint64
	// MemoryStat is memory.stat, as the kernel names its keys.
	MemoryStat map[string]uint64

	PIDs      uint64
	PIDsLimit uint64

	BlockRead  uint64
	BlockWrite uint64
}

// Stats reads the cgroup's counters: from the v2 directory on a unified
// host, else from the v1 hierarchies (on a hybrid host the v2 cgroup holds
// no controllers). A cgroup that does not exist (any more) is an error
// wrapping os.ErrNotExist.
func (m *Manager) Stats() (*Stats, error) {
	st := &Stats{}
	if m.layout.mode == Unified {
		return st, readV2Stats(m.dirIn(m.layout.v2), st)
	}
	return st, readV1Stats(func(controller string) string {
		if dir, ok := m.v1Dir(controller); ok {
			return dir
		}
		// A missing controller reads as a missing file.
		return filepath.Join(os.DevNull, controller)
	}, st)
}

// OOMKilled reports whether the kernel's OOM killer killed a process of
// the cgroup (the oom_kill counter of v1 memory.oom_control or v2
// memory.events). It can be asked after the processes are gone, as long
// as the cgroup exists.
func (m *Manager) OOMKilled() bool {
	var files []string
	if dir, ok := m.v1Dir("memory"); ok {
		files = append(files, filepath.Join(dir, "memory.oom_control"))
	}
	if m.layout.v2 != "" {
		files = append(files, filepath.Join(m.dirIn(m.layout.v2), "memory.events"))
	}
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if n := parseFlatKeyed(raw)["oom_kill"]; n > 0 {
			return true
		}
	}
	return false
}

// readV1Stats reads the v1 controllers; dirFor gives the cgroup's
// directory in the hierarchy of a controller.
func readV1Stats(dirFor func(controller string) string, st *Stats) error {
	var err error
	if st.CPUUsage, err = readUint(filepath.Join(dirFor("cpuacct"), "cpuacct.usage")); err != nil {
		return err
	}
	memDir := dirFor("memory")
	if st.MemoryRaw, err = readUint(filepath.Join(memDir, "memory.usage_in_bytes")); err != nil {
		return err
	}
	if st.MemoryLimit, err = readLimit(filepath.Join(memDir, "memory.limit_in_bytes")); err != nil {
		return err
	}
	if st.MemoryStat, err = readFlatKeyed(filepath.Join(memDir, "memory.stat")); err != nil {
		return err
	}

	// A kernel may lack the pids or blkio controller: report zeros.
	pidsDir := dirFor("pids")
	st.PIDs, _ = readUint(filepath.Join(pidsDir, "pids.current"))
	st.PIDsLimit, _ = readLimit(filepath.Join(pidsDir, "pids.max"))

	// The throttle layer counts every request; the CFQ/BFQ files only those
	// of devices using that scheduler. Take the first file that lists a
	// device.
	blkDir := dirFor("blkio")
	for _, name := range []string{
		"blkio.throttle.io_service_bytes",
		"blkio.throttle.io_service_bytes_recursive",
		"blkio.io_service_bytes_recursive",
		"blkio.bfq.io_service_bytes_recursive",
	} {
		raw, err := os.ReadFile(filepath.Join(blkDir, name))
		if err != nil {
			continue
		}
		r, w, found := parseBlkioV1(raw)
		if found {
			st.BlockRead, st.BlockWrite = r, w
			break
		}
	}
	return nil
}

// readV2Stats reads the v2 cgroup directory dir.
func readV2Stats(dir string, st *Stats) error {
	cpu, err := readFlatKeyed(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	usec, ok := cpu["usage_usec"]
	if !ok {
		return fmt.Errorf("%s: no usage_usec", filepath.Join(dir, "cpu.stat"))
	}
	st.CPUUsage = usec * 1000

	if st.MemoryRaw, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		return err
	}
	if st.MemoryLimit, err = readLimit(filepath.Join(dir, "memory.max")); err != nil {
		return err
	}
	if st.MemoryStat, err = readFlatKeyed(filepath.Join(dir, "memory.stat")); err != nil {
		return err
	}

	// pids and io are absent when the controllers are not enabled for the
	// subtree: report zeros.
	st.PIDs, _ = readUint(filepath.Join(dir, "pids.current"))
	st.PIDsLimit, _ = readLimit(filepath.Join(dir, "pids.max"))
	if raw, err := os.ReadFile(filepath.Join(dir, "io.stat")); err == nil {
		st.BlockRead, st.BlockWrite = parseIOStat(raw)
	}
	return nil
}

func readUint(path string) (uint64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(raw)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// readLimit reads a limit file; "max" (v2) means unlimited and yields 0.
func readLimit(path string) (uint64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(raw))
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func readFlatKeyed(path string) (map[string]uint64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseFlatKeyed(raw), nil
}

// parseFlatKeyed parses "key value" lines (memory.stat, cpu.stat); lines
// that do not fit are skipped.
func parseFlatKeyed(raw []byte) map[string]uint64 {
	m := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			m[f[0]] = v
		}
	}
	return m
}

// parseBlkioV1 sums the Read and Write lines ("8:0 Read 4096") of a v1
// blkio io_service_bytes file over all devices; found tells whether any
// device line was present (a cgroup without I/O lists only "Total 0").
func parseBlkioV1(raw []byte) (read, write uint64, found bool) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || !strings.Contains(f[0], ":") {
			continue
		}
		v, err := strconv.ParseUint(f[2], 10, 64)
		if err != nil {
			continue
		}
		found = true
		switch strings.ToLower(f[1]) {
		case "read":
			read += v
		case "write":
			write += v
		}
	}
	return read, write, found
}

// parseIOStat sums rbytes and wbytes of a v2 io.stat
// ("8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0") over all
// devices.
func parseIOStat(raw []byte) (read, write uint64) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			switch k {
			case "rbytes":
				read += n
			case "wbytes":
				write += n
			}
		}
	}
	return read, write
}
