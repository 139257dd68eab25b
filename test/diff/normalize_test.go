package diff

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// Output differs between two engines, and between two runs of one, in
// what no user can rely on: ids and digests, times, sizes, host paths,
// column widths. normalize replaces those with placeholders so that what
// remains can be compared exactly.
var normalizers = []struct {
	re   *regexp.Regexp
	repl string
}{
	// Times first: their digits would otherwise read as sizes or ids.
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<time>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} [A-Z]+`), "<time>"},
	{regexp.MustCompile(`\b(Less than a second|About an? (minute|hour)|\d+ (seconds?|minutes?|hours?|days?|weeks?|months?|years?))\b`), "<dur>"},
	{regexp.MustCompile(`\b([0-9a-f]{64}|[0-9a-f]{12})\b`), "<id>"},
	{regexp.MustCompile(`\b\d+(\.\d+)?\s?(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\b`), "<size>"},
}

var (
	manySpaces = regexp.MustCompile(` {2,}`)
	digits     = regexp.MustCompile(`\d+`)
)

// normalize returns the lines of out with the variable parts replaced:
// paths (the engine's own roots and the case's temporary directory, given
// as path -> placeholder), then the patterns above; runs of spaces become
// two, so table columns compare whatever their widths.
func normalize(out string, paths map[string]string, mode string) []string {
	// Longest path first: a root may contain the temporary directory.
	keys := make([]string, 0, len(paths))
	for k := range paths {
		if k != "" {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		out = strings.ReplaceAll(out, k, paths[k])
	}
	for _, n := range normalizers {
		out = n.re.ReplaceAllString(out, n.repl)
	}
	out = strings.TrimRight(out, "\n")
	if out == "" {
		return nil
	}
	lines := strings.Split(out, "\n")
	host, _ := os.Hostname()
	for i, l := range lines {
		l = strings.TrimRight(manySpaces.ReplaceAllString(l, "  "), " \t\r")
		if host != "" && l == host {
			// --network host: the machine's name, wherever the suite runs.
			l = "<hostname>"
		}
		if mode == "nonum" {
			l = digits.ReplaceAllString(l, "N")
		}
		lines[i] = l
	}
	if mode == "sorted" {
		sort.Strings(lines)
	}
	return lines
}

func TestNormalize(t *testing.T) {
	paths := map[string]string{"/tmp/x/root": "<root>", "/tmp/x": "{tmp}"}
	for _, tc := range []struct{ in, mode, want string }{
		{"3f2a1b4c5d6e", "", "<id>"},
		{"sha256:" + strings.Repeat("ab", 32), "", "sha256:<id>"},
		{"Up 3 seconds   (healthy)", "", "Up <dur>  (healthy)"},
		{"Exited (3) About a minute ago", "", "Exited (3) <dur> ago"},
		{"Created Less than a second ago", "", "Created <dur> ago"},
		{"1.98MB (virtual 4.1kB) 0B", "", "<size> (virtual <size>) <size>"},
		{"2026-12-07T03:57:39.123456789Z", "", "<time>"},
		{"2026-12-07 03:57:39 +0000 UTC", "", "<time>"},
		{"/tmp/x/root/volumes/v/_data /tmp/x/f", "", "<root>/volumes/v/_data {tmp}/f"},
		{"PID 1234  sleep 600", "nonum", "PID N  sleep N"},
		{"b\na\n", "sorted", "a\nb"},
		{"exit 127", "", "exit 127"},
	} {
		got := strings.Join(normalize(tc.in, paths, tc.mode), "\n")
		if got != tc.want {
			t.Errorf("normalize(%q, %q) = %q, want %q", tc.in, tc.mode, got, tc.want)
		}
	}
}

func TestSplitArgs(t *testing.T) {
	for in, want := range map[string][]string{
		`run --rm busybox sh -c 'exit 3'`:      {"run", "--rm", "busybox", "sh", "-c", "exit 3"},
		`inspect -f "{{.Name}} \"x\"" c`:       {"inspect", "-f", `{{.Name}} "x"`, "c"},
		`run -e 'BAD NAME=1' busybox env`:      {"run", "-e", "BAD NAME=1", "busybox", "env"},
		`a\ b ''`:                              {"a b", ""},
		`ps --format '{{json .}}'  --no-trunc`: {"ps", "--format", "{{json .}}", "--no-trunc"},
	} {
		got, err := splitArgs(in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestGoldenFilesMatchCases: every case has a golden file with its checked
// commands, in order, and no golden file is left over from a removed case
// (checked without root or Docker, so a stale file shows everywhere).
func TestGoldenFilesMatchCases(t *testing.T) {
	cases, err := parseCases(filepath.Join("testdata", "cases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range cases {
		names[c.name] = true
		want, err := readGolden(goldenPath(c.name))
		if err != nil {
			t.Errorf("case %s: %v", c.name, err)
			continue
		}
		steps := checkedSteps(c)
		if len(want) != len(steps) {
			t.Errorf("case %s: golden file has %d steps, the case %d (go test ./test/diff -update -case %s)", c.name, len(want), len(steps), c.name)
			continue
		}
		for i, s := range steps {
			if want[i].cmd != s.cmd {
				t.Errorf("case %s step %d: golden %q, case %q", c.name, i+1, want[i].cmd, s.cmd)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.golden"))
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".golden"); !names[name] {
			t.Errorf("%s: no such case in cases.txt", f)
		}
	}
}
