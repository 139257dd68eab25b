package diff

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// A testCase is one named entry of testdata/cases.txt: commands run in
// order against one engine, some of them checked.
type testCase struct {
	name   string
	serial bool // sees global state (prune, ps -a, images...): runs alone against Docker
	steps  []step
	line   int
}

type stepKind int

const (
	kSetup   stepKind = iota // must exit 0; output not compared
	kRun                     // checked: exit code, stdout, stderr gist
	kHost                    // checked like kRun, but `sh -c` on the host in {tmp}
	kPoll                    // repeated until it exits 0 (deadline); not compared
	kCleanup                 // always run at the end; failures ignored
)

type step struct {
	kind   stepKind
	cmd    string // unexpanded, as written (the golden file keys on it)
	stdin  string
	stderr []string // key phrases that must appear in stderr
	out    string   // stdout mode: "" (exact), "ignore", "sorted", "nonum"
	want   string   // poll: the stdout (trimmed) to wait for, else exit 0 is enough
	line   int
	berth  *berthExpect // a deliberate difference: what berth must do instead
}

// berthExpect is a checked step where berth differs from the golden
// (Docker Engine 20.10) on purpose: berth is compared with this, Docker
// still with the golden file.
type berthExpect struct {
	reason string
	exit   *int     // nil: the golden's exit code
	out    []string // with outSet: berth's stdout lines ({nofile-soft}... expanded)
	outSet bool
	stderr []string // key phrases berth's stderr must contain; nil: the step's own check
}

var caseName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// parseCases reads the case file. Its format (see the file's header):
//
//	[name] or [name serial]
//	setup: CMD      run: CMD      host: SHELL      poll: CMD      cleanup: CMD
//	stdin: TEXT     (for the next command; \n is a newline)
//	want: TEXT      (for the previous poll: the stdout to wait for)
//	stderr: PHRASE  out: ignore|sorted|nonum   (for the previous checked command)
//	differs: REASON (the previous checked command differs on purpose), then
//	berth-exit: N   berth-out: LINE (repeated; "(none)": no output)
//	berth-stderr: PHRASE
func parseCases(path string) ([]*testCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cases []*testCase
	seen := map[string]bool{}
	var cur *testCase
	var stdin string
	sc := bufio.NewScanner(f)
	n := 0
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", path, n, fmt.Sprintf(format, a...))
	}
	lastChecked := func() *step {
		if cur == nil || len(cur.steps) == 0 {
			return nil
		}
		s := &cur.steps[len(cur.steps)-1]
		if s.kind != kRun && s.kind != kHost {
			return nil
		}
		return s
	}
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			f := strings.Fields(line[1 : len(line)-1])
			if len(f) == 0 || !caseName.MatchString(f[0]) {
				return nil, fail("bad case name %q (lower-case letters, digits, dashes)", line)
			}
			if seen[f[0]] {
				return nil, fail("case %s defined twice", f[0])
			}
			seen[f[0]] = true
			cur = &testCase{name: f[0], line: n}
			for _, opt := range f[1:] {
				switch opt {
				case "serial":
					cur.serial = true
				default:
					return nil, fail("unknown case option %q", opt)
				}
			}
			cases = append(cases, cur)
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fail("want KEY: VALUE, got %q", line)
		}
		val = strings.TrimSpace(val)
		if cur == nil {
			return nil, fail("%s before the first [case]", key)
		}
		kinds := map[string]stepKind{"setup": kSetup, "run": kRun, "host": kHost, "poll": kPoll, "cleanup": kCleanup}
		if k, ok := kinds[key]; ok {
			if k != kHost {
				if _, err := splitArgs(val); err != nil {
					return nil, fail("%v", err)
				}
			}
			cur.steps = append(cur.steps, step{kind: k, cmd: val, stdin: stdin, line: n})
			stdin = ""
			continue
		}
		switch key {
		case "stdin":
			stdin = strings.ReplaceAll(val, `\n`, "\n")
		case "stderr":
			s := lastChecked()
			if s == nil {
				return nil, fail("stderr: must follow a run: or host: line")
			}
			s.stderr = append(s.stderr, val)
		case "want":
			if cur == nil || len(cur.steps) == 0 || cur.steps[len(cur.steps)-1].kind != kPoll {
				return nil, fail("want: must follow a poll: line")
			}
			cur.steps[len(cur.steps)-1].want = val
		case "differs":
			s := lastChecked()
			if s == nil {
				return nil, fail("differs: must follow a run: or host: line")
			}
			if val == "" {
				return nil, fail("differs: needs the reason")
			}
			if s.berth != nil {
				return nil, fail("differs: given twice for one step")
			}
			s.berth = &berthExpect{reason: val}
		case "berth-exit", "berth-out", "berth-stderr":
			s := lastChecked()
			if s == nil || s.berth == nil {
				return nil, fail("%s: must follow a differs: line", key)
			}
			b := s.berth
			switch key {
			case "berth-exit":
				code, err := strconv.Atoi(val)
				if err != nil {
					return nil, fail("berth-exit: want a number, got %q", val)
				}
				b.exit = &code
			case "berth-out":
				b.outSet = true
				if val != "(none)" {
					b.out = append(b.out, val)
				}
			case "berth-stderr":
				b.stderr = append(b.stderr, val)
			}
		case "out":
			s := lastChecked()
			if s == nil {
				return nil, fail("out: must follow a run: or host: line")
			}
			switch val {
			case "ignore", "sorted", "nonum":
				s.out = val
			default:
				return nil, fail("unknown out mode %q", val)
			}
		default:
			return nil, fail("unknown key %q", key)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, c := range cases {
		checked := 0
		for _, s := range c.steps {
			if s.kind == kRun || s.kind == kHost {
				checked++
			}
			if b := s.berth; b != nil && b.exit == nil && !b.outSet && b.stderr == nil {
				return nil, fmt.Errorf("%s:%d: differs: says nothing of what berth does (berth-exit:, berth-out:, berth-stderr:)", path, s.line)
			}
		}
		if checked == 0 {
			return nil, fmt.Errorf("%s:%d: case %s checks nothing (no run: or host: line)", path, c.line, c.name)
		}
	}
	return cases, nil
}

// splitArgs splits a command line as sh would, for quotes and backslashes
// only (no variables, globs or operators).
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\'':
			inArg = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inArg = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
		case c == '\\' && i+1 < len(s):
			inArg = true
			i++
			cur.WriteByte(s[i])
		default:
			inArg = true
			cur.WriteByte(c)
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}
