package diff

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// berthWant is what berth must produce at step s: the golden file's output
// (Docker's), or, where the case marks a deliberate difference, what the
// case says berth does instead. The step returned carries the stderr
// phrases to check.
func berthWant(s step, golden stepOut) (step, stepOut) {
	b := s.berth
	if b == nil {
		return s, golden
	}
	w := golden
	if b.exit != nil {
		w.code = *b.exit
	}
	if b.outSet {
		w.stdout = nil
		expand := berthPlaceholders()
		for _, l := range b.out {
			w.stdout = append(w.stdout, expand.Replace(l))
		}
		if s.out == "sorted" {
			sort.Strings(w.stdout)
		}
	}
	switch {
	case len(b.stderr) == 1 && b.stderr[0] == "(none)":
		s.stderr, w.stderr = nil, "" // berth's stderr must be empty
	case b.stderr != nil:
		s.stderr = b.stderr
	}
	return s, w
}

// berthPlaceholders are the values of berth-out: lines that depend on the
// machine: {nofile-soft} and {nofile-hard}, the RLIMIT_NOFILE berth gives
// containers here (1024:524288, lowered to fs.nr_open and, without
// CAP_SYS_RESOURCE, to the caller's own hard limit, which berth inherits).
func berthPlaceholders() *strings.Replacer {
	soft, hard := uint64(1024), uint64(524288)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			hard = min(hard, n)
		}
	}
	if !hasCapSysResource() {
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
			hard = min(hard, rl.Max)
		}
	}
	soft = min(soft, hard)
	return strings.NewReplacer("{nofile-soft}", strconv.FormatUint(soft, 10), "{nofile-hard}", strconv.FormatUint(hard, 10))
}

// hasCapSysResource tells whether this process (and so the berth it runs)
// has CAP_SYS_RESOURCE in its effective set.
func hasCapSysResource() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	return false
}

// deliberateDifferences lists the steps of cases where berth differs from
// Docker Engine 20.10 on purpose, with their reasons, for the summary.
func deliberateDifferences(cases []*testCase) []string {
	var out []string
	for _, c := range cases {
		for _, s := range c.steps {
			if s.berth != nil {
				out = append(out, fmt.Sprintf("%s (cases.txt:%d `%s`): %s", c.name, s.line, s.cmd, s.berth.reason))
			}
		}
	}
	return out
}
