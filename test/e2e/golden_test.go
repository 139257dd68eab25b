package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// -update rewrites testdata/golden from a real Docker engine: the test
// starts a private dockerd (its own data and exec roots and socket, no
// bridge or iptables), runs the same commands there and stores Docker's
// normalised output. Without it, berth's normalised output must equal the
// stored files: field order and presence exactly, values after normalising.
var updateGolden = flag.Bool("update", false, "rewrite testdata/golden from a private dockerd")

// goldenSetup makes the objects the golden commands look at, under names
// of their own. The image comes from stdin, so that both engines note it
// as "Imported from -".
var goldenSetup = [][]string{
	{"import", "-", "gp-busybox"},
	{"run", "--network", "none", "--name", "gp-exit", "-m", "512m", "gp-busybox", "sh", "-c", "exit 3"},
	{"create", "--network", "none", "--name", "gp-rich", "--restart", "on-failure:2",
		"--ulimit", "nofile=1024:2048", "--log-opt", "max-size=1m", "-v", "gp-vol:/data", "--tmpfs", "/t",
		"--health-cmd", "true", "--health-interval", "5s", "-e", "A=1", "-l", "k=v", "-w", "/tmp",
		"-u", "1000", "--cap-add", "NET_ADMIN", "--memory-swap", "-1", "-m", "64m", "gp-busybox", "sleep", "100"},
	{"create", "--network", "none", "--name", "gp-long", "gp-busybox", "sh", "-c", "echo a command line longer than twenty"},
	{"volume", "create", "gp-v"},
	{"commit", "gp-exit", "gp-commit"},
}

// goldenCases are the compared commands: file name -> arguments.
var goldenCases = []struct {
	name string
	args []string
}{
	{"inspect-container-exited", []string{"inspect", "gp-exit"}},
	{"inspect-container-created", []string{"inspect", "gp-rich"}},
	{"inspect-container-size", []string{"container", "inspect", "-s", "gp-exit"}},
	{"inspect-image", []string{"image", "inspect", "gp-busybox"}},
	{"inspect-volume", []string{"volume", "inspect", "gp-v"}},
	{"inspect-volume-of-container", []string{"volume", "inspect", "gp-vol"}},
	{"inspect-template-missing-field", []string{"inspect", "-f", "{{.NoSuchField}}", "gp-exit"}},
	{"inspect-template-nil-health", []string{"inspect", "-f", "{{.State.Health}}", "gp-exit"}},
	{"inspect-template-typed-and-raw", []string{"inspect", "-f", "{{.ID}} {{.HostConfig.MemorySwap}} {{.HostConfig.Tmpfs}}", "gp-exit", "gp-rich"}},
	{"inspect-template-parse-error", []string{"inspect", "-f", "{{.Nope", "gp-exit"}},
	{"ps", []string{"ps", "-a"}},
	{"ps-no-trunc", []string{"ps", "-a", "--no-trunc"}},
	{"ps-size", []string{"ps", "-a", "-s"}},
	{"images", []string{"images", "gp-busybox"}},
	{"history", []string{"history", "gp-busybox"}},
	{"history-commit", []string{"history", "gp-commit"}},
}

// TestGoldenAgainstDocker compares berth's inspect, ps, images and
// history output with Docker's, stored in testdata/golden.
func TestGoldenAgainstDocker(t *testing.T) {
	tarball := testutil.BusyboxTar(t)
	img, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	var run func(stdin []byte, args ...string) result
	if *updateGolden {
		run = privateDockerd(t)
	} else {
		e := newEnv(t)
		run = func(stdin []byte, args ...string) result { return e.runIn(stdin, args...) }
	}
	for _, args := range goldenSetup {
		var stdin []byte
		if args[0] == "import" {
			stdin = img
		}
		if r := run(stdin, args...); r.code != 0 && args[0] != "run" {
			t.Fatalf("%s: %s", strings.Join(args, " "), r)
		}
	}
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got := goldenText(run(nil, tc.args...))
			file := filepath.Join("testdata", "golden", tc.name+".golden")
			if *updateGolden {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				head := "# docker " + strings.Join(tc.args, " ") + "\n# taken from Docker (go test ./test/e2e -run TestGoldenAgainstDocker -update), normalised\n"
				if err := os.WriteFile(file, []byte(head+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update where a Docker engine is installed)", err)
			}
			want := string(raw)
			for strings.HasPrefix(want, "#") {
				want = want[strings.IndexByte(want, '\n')+1:]
			}
			if got != want {
				t.Errorf("berth %s differs from Docker's (-docker +berth):\n%s", strings.Join(tc.args, " "), lineDiff(want, got))
			}
		})
	}
}

// goldenText is a command's exit status, stdout and stderr, normalised.
func goldenText(r result) string {
	return fmt.Sprintf("exit: %d\n-- stdout --\n%s-- stderr --\n%s", r.code, normalize(r.stdout), normalize(stripPrefix(r.stderr)))
}

// stripPrefix drops the name berth puts before its messages (docker's CLI
// prints a template error bare): the message is compared, not the prefix.
func stripPrefix(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "berth: ")
	}
	return strings.Join(lines, "\n")
}

var (
	reLongID  = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	reShortID = regexp.MustCompile(`\b[0-9a-f]{12}\b`)
	reTime    = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	reAgo     = regexp.MustCompile(`(Less than a second|About a minute|About an hour|\d+ (second|minute|hour|day|week|month|year)s?)`)
	// Paths differ by engine and layout: only their presence is compared.
	rePath = regexp.MustCompile(`"(ResolvConfPath|HostnamePath|HostsPath|LogPath|Mountpoint|LowerDir|MergedDir|UpperDir|WorkDir|Source)": "/[^"]*"`)
	// Values where berth differs from Docker 20.10 on purpose:
	//   CgroupnsMode: berth gives every container a cgroup namespace;
	//   Runtime: berth's default runtime is its own;
	//   SandboxID, SandboxKey, NetworkID: berth has no network sandbox
	//     objects yet;
	//   DockerVersion: the engine's version;
	//   Size, VirtualSize, SizeRootFs: Docker counts a layer's tar entries,
	//     berth the extracted files; the human-readable sizes agree;
	//   MaskedPaths: berth masks Docker 28's list (interrupts, powercap).
	reEngineValue = regexp.MustCompile(`"(CgroupnsMode|Runtime|SandboxID|SandboxKey|NetworkID|DockerVersion)": "[^"]*"`)
	reSizeValue   = regexp.MustCompile(`"(Size|VirtualSize|SizeRootFs)": \d+`)
	reMasked      = regexp.MustCompile(`"MaskedPaths": \[[^\]]*\]`)
	reSpaces      = regexp.MustCompile(` {2,}`)
)

func normalize(s string) string {
	s = reLongID.ReplaceAllString(s, "<ID>")
	s = reShortID.ReplaceAllString(s, "<SHORTID>")
	s = reTime.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasPrefix(m, "0001-01-01T00:00:00") {
			return m // "never" is a value, not a time
		}
		return "<TIME>"
	})
	s = rePath.ReplaceAllString(s, `"$1": "<PATH>"`)
	s = reEngineValue.ReplaceAllString(s, `"$1": "<ENGINE>"`)
	s = reSizeValue.ReplaceAllString(s, `"$1": <SIZE>`)
	s = reMasked.ReplaceAllString(s, `"MaskedPaths": [<PATHS>]`)
	s = reAgo.ReplaceAllString(s, "<DUR>")
	// Table columns are as wide as their widest cell, which differs once
	// durations are normalised: compare the cells, not the padding. JSON
	// indentation is kept (it starts lines).
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		indent := len(l) - len(strings.TrimLeft(l, " "))
		lines[i] = l[:indent] + reSpaces.ReplaceAllString(strings.TrimRight(l[indent:], " "), "  ")
	}
	return strings.Join(lines, "\n")
}

// lineDiff lists the lines only a or only b has (a longest common
// subsequence diff), with a line of context before each change.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	lcs := make([][]int, len(al)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(bl)+1)
	}
	for i := len(al) - 1; i >= 0; i-- {
		for j := len(bl) - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	prev := ""
	changed := false
	i, j := 0, 0
	for i < len(al) || j < len(bl) {
		switch {
		case i < len(al) && j < len(bl) && al[i] == bl[j]:
			prev, changed = al[i], false
			i++
			j++
			continue
		case j < len(bl) && (i == len(al) || lcs[i][j+1] >= lcs[i+1][j]):
			if !changed {
				fmt.Fprintf(&out, "  %s\n", prev)
			}
			fmt.Fprintf(&out, "+ %s\n", bl[j])
			j++
		default:
			if !changed {
				fmt.Fprintf(&out, "  %s\n", prev)
			}
			fmt.Fprintf(&out, "- %s\n", al[i])
			i++
		}
		changed = true
	}
	return out.String()
}

// privateDockerd starts a dockerd of the test's own and returns a runner
// of the docker CLI against it; it is stopped by its pid at cleanup.
func privateDockerd(t *testing.T) func(stdin []byte, args ...string) result {
	d := testutil.StartDockerd(t, "berth-golden-dockerd-")
	return func(stdin []byte, args ...string) result {
		t.Helper()
		r := d.Run(stdin, args...)
		if r.Code < 0 {
			t.Fatalf("docker %v: %s", args, r.Stderr)
		}
		return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code}
	}
}
