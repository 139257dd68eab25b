package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// exitCase is a failing command and what docker's CLI 28.2 against Engine
// 20.10 does with it (measured side by side): the exit code and a telling
// part of stderr (IDs and generated names differ, the rest is docker's
// words with "docker" spelled "berth").
type exitCase struct {
	args   []string
	code   int
	stderr string
}

// berthOnly are the cases where berth deliberately differs from Engine
// 20.10: it follows later engines (127 for an exec'd command that is absent).
var berthOnly = map[string]bool{"exec r1 nosuchcmd": true}

// exitCases needs the containers r1 (running) and e1 (exited), the volume
// v1 and the image busybox; dir is a scratch directory.
func exitCases(t *testing.T, dir string) []exitCase {
	out := filepath.Join(dir, "cp-out")
	cid := filepath.Join(dir, "cid")
	if err := os.WriteFile(cid, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []exitCase{
		{[]string{"rm", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"rm", "-f", "nosuch"}, 0, "Error response from daemon: No such container: nosuch"},
		{[]string{"rm", "r1"}, 1, "Error response from daemon: "},
		{[]string{"rm"}, 1, "berth: 'berth rm' requires at least 1 argument"},
		{[]string{"rmi", "nosuch"}, 1, "Error response from daemon: No such image: nosuch:latest"},
		{[]string{"rmi", "busybox"}, 1, "Error response from daemon: conflict: unable to "},
		{[]string{"volume", "rm", "nosuch"}, 1, "Error response from daemon: "},
		{[]string{"volume", "inspect", "nosuch"}, 1, "Error response from daemon: "},
		{[]string{"inspect", "nosuch"}, 1, "No such object: nosuch"},
		{[]string{"inspect", "-f", "{{.Foo", "r1"}, 64, "template parsing error: template: :1: unclosed action"},
		{[]string{"image", "inspect", "nosuch"}, 1, "No such image: nosuch:latest"},
		{[]string{"container", "inspect", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"pause", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"pause", "e1"}, 1, "is not running"},
		{[]string{"unpause", "r1"}, 1, "is not paused"},
		{[]string{"kill", "nosuch"}, 1, "No such container: nosuch"},
		{[]string{"kill", "e1"}, 1, "Error response from daemon: Cannot kill container: e1: "},
		{[]string{"kill", "-s", "BOGUS", "r1"}, 1, "Error response from daemon: "},
		{[]string{"top", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"top", "e1"}, 1, "is not running"},
		{[]string{"wait", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"rename", "r1", "e1"}, 1, `Conflict. The container name "/e1" is already in use`},
		{[]string{"cp", "nosuch:/x", out}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"cp", "r1:/nonexistent", out}, 1, "Could not find the file /nonexistent in container r1"},
		{[]string{"attach", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"attach", "e1"}, 1, "You cannot attach to a stopped container, start it first"},
		{[]string{"ps", "--format", "{{.Foo"}, 1, "template: :1: unclosed action"},
		{[]string{"ps", "--format", "{{.Nope}}"}, 1, "failed to execute template: "},
		{[]string{"images", "--format", "{{.Foo"}, 1, "template parsing error: template: :1: unclosed action"},
		{[]string{"foo"}, 1, "berth: unknown command: berth foo"},
		{[]string{"container", "foo"}, 1, "berth: unknown command: berth container foo"},
		{[]string{"volume", "foo"}, 1, "berth: unknown command: berth volume foo"},
		{[]string{"ps", "--bogus"}, 125, "unknown flag: --bogus\n\nUsage:  berth ps [OPTIONS]"},
		{[]string{"rm", "--bogus", "x"}, 125, "unknown flag: --bogus"},
		{[]string{"run", "--bogus", "busybox"}, 125, "unknown flag: --bogus"},
		{[]string{"create", "--bogus", "busybox"}, 125, "unknown flag: --bogus"},
		{[]string{"volume", "create", "--bogus"}, 125, "unknown flag: --bogus"},
		{[]string{"run"}, 1, "berth: 'berth run' requires at least 1 argument"},
		{[]string{"create"}, 1, "berth: 'berth create' requires at least 1 argument"},
		{[]string{"exec"}, 1, "berth: 'berth exec' requires at least 2 arguments"},
		{[]string{"exec", "r1", "nosuchcmd"}, 127, "executable file not found"},
		{[]string{"exec", "r1", "/etc"}, 126, ""}, // docker prints the reason on stdout
		{[]string{"exec", "nosuch", "ls"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"exec", "e1", "ls"}, 1, "is not running"},
		{[]string{"start", "nosuch"}, 1, "Error response from daemon: No such container: nosuch\nError: failed to start containers: nosuch"},
		{[]string{"stop", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"restart", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"logs", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"export", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"commit", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"diff", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"history", "nosuch"}, 1, "Error response from daemon: No such image: nosuch:latest"},
		{[]string{"tag", "nosuch", "x"}, 1, "Error response from daemon: No such image: nosuch:latest"},
		{[]string{"save", "nosuch"}, 1, "Error response from daemon: No such image: nosuch"},
		{[]string{"stats", "--no-stream", "nosuch"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"version", "--format", "{{.Foo"}, 64, "template parsing error: "},
		{[]string{"info", "--format", "{{.Foo"}, 64, "template parsing error: template: :1: unclosed action"},
		// create: engine failures exit 1, flag/parse failures 125.
		{[]string{"create", "--name", "r1", "busybox", "true"}, 1, `Error response from daemon: Conflict. The container name "/r1" is already in use`},
		{[]string{"create", "--cap-add", "BOGUS", "busybox", "true"}, 1, `Error response from daemon: invalid CapAdd: unknown capability: "CAP_BOGUS"`},
		{[]string{"create", "--volumes-from", "nosuch", "busybox", "true"}, 1, "Error response from daemon: No such container: nosuch"},
		{[]string{"create", "--restart", "always", "--rm", "busybox", "true"}, 125, "berth: conflicting options: cannot specify both --restart and --rm\n\nRun 'berth create --help' for more information"},
		{[]string{"create", "--ulimit", "bogus=1", "busybox", "true"}, 125, `invalid argument "bogus=1" for "--ulimit" flag: invalid ulimit type: bogus`},
		{[]string{"create", "--cidfile", cid, "busybox", "true"}, 1, "container ID file found, make sure the other container isn't running or delete " + cid},
		{[]string{"run", "--cidfile", cid, "busybox", "true"}, 125, "berth: container ID file found, make sure the other container isn't running or delete " + cid},
		{[]string{"run", "-it", "busybox", "true"}, 1, "the input device is not a TTY"},
		{[]string{"run", "--stop-signal", "BOGUS", "busybox", "true"}, 125, "berth: Error response from daemon: Invalid signal: BOGUS"},
		{[]string{"run", "--network", "nosuchnet", "busybox", "true"}, 125, "berth: Error response from daemon: network nosuchnet not found"},
		{[]string{"run", "--cpuset-cpus", "999", "busybox", "true"}, 125, "Error response from daemon: Requested CPUs are not available - requested 999, available: "},
		{[]string{"create", "--cpuset-cpus", "999", "busybox", "true"}, 1, "Error response from daemon: Requested CPUs are not available - requested 999, available: "},
		{[]string{"create", "--sysctl", "kernel.foo=1", "busybox", "true"}, 125, `invalid argument "kernel.foo=1" for "--sysctl" flag: sysctl 'kernel.foo=1' is not allowed`},
		{[]string{"create", "--tmpfs", "rel", "busybox", "true"}, 1, "Error response from daemon: invalid mount path: 'rel' mount path must be absolute"},
		{[]string{"create", "-w", "rel", "busybox", "true"}, 1, "Error response from daemon: the working directory 'rel' is invalid, it needs to be an absolute path"},
		{[]string{"create", "--mount", "type=bind,src=/nonexistent-src,dst=/x", "busybox", "true"}, 1, `invalid mount config for type "bind": bind source path does not exist: /nonexistent-src`},
		{[]string{"create", "--health-retries", "-1", "busybox", "true"}, 125, "berth: --health-retries cannot be negative"},
		// run: every failure before the container runs exits 125.
		{[]string{"run", "nosuchimage"}, 125, "Unable to find image 'nosuchimage:latest' locally"},
		{[]string{"run", "busybox", "nosuchcmd"}, 127, "executable file not found"},
		{[]string{"run", "busybox", "/etc"}, 126, "permission denied"},
		{[]string{"run", "busybox", "sh", "-c", "exit 3"}, 3, ""},
		{[]string{"run", "--cap-add", "BOGUS", "busybox", "true"}, 125, "berth: Error response from daemon: invalid CapAdd: unknown capability: \"CAP_BOGUS\"\n\nRun 'berth run --help' for more information"},
		{[]string{"run", "--cpus", "99", "busybox", "true"}, 125, "Error response from daemon: Range of CPUs is from 0.01 to "},
		{[]string{"run", "-u", "nosuchuser", "busybox", "true"}, 125, "unable to find user nosuchuser: no matching entries in passwd file"},
		{[]string{"run", "-u", "nobody:nosuchgroup", "busybox", "true"}, 125, "unable to find group nosuchgroup: no matching entries in group file"},
		{[]string{"run", "-m", "1k", "busybox", "true"}, 125, "Error response from daemon: Minimum memory limit allowed is 6MB"},
		{[]string{"run", "--memory-swap", "1g", "busybox", "true"}, 125, "Error response from daemon: You should always set the Memory limit when using Memoryswap limit, see usage"},
		{[]string{"run", "--oom-score-adj", "2000", "busybox", "true"}, 125, "Error response from daemon: Invalid value 2000, range for oom score adj is [-1000, 1000]"},
		{[]string{"run", "--restart", "always", "--rm", "busybox", "true"}, 125, "berth: conflicting options: cannot specify both --restart and --rm"},
		{[]string{"run", "--ulimit", "bogus=1", "busybox", "true"}, 125, `invalid argument "bogus=1" for "--ulimit" flag: invalid ulimit type: bogus`},
		{[]string{"run", "--log-opt", "bogus=1", "busybox", "true"}, 125, "Error response from daemon: unknown log opt 'bogus' for json-file log driver"},
		{[]string{"run", "--health-interval", "1us", "busybox", "true"}, 125, "Error response from daemon: Interval in Healthcheck cannot be less than 1ms"},
		{[]string{"run", "--cpu-period", "100", "busybox", "true"}, 125, "Error response from daemon: CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"},
		{[]string{"run", "--volumes-from", "nosuch", "busybox", "true"}, 125, "berth: Error response from daemon: No such container: nosuch"},
	}
}

func checkExitCases(t *testing.T, tool string, run func(args ...string) result, cases []exitCase) {
	for _, tc := range cases {
		if berthOnly[strings.Join(tc.args, " ")] && tool != "berth" {
			continue
		}
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := run(tc.args...)
			want := strings.ReplaceAll(tc.stderr, "berth", tool)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d\n%s", r.code, tc.code, r)
			}
			if !strings.Contains(r.stderr, want) {
				t.Fatalf("stderr lacks %q\n%s", want, r)
			}
			if strings.Contains(r.stderr, "panic") {
				t.Fatalf("panic: %s", r)
			}
		})
	}
}

// TestExitCodesLikeDocker runs failing commands and compares the exit code
// and the gist of stderr with docker's (see exitCases).
func TestExitCodesLikeDocker(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "r1", "busybox", "sleep", "1000")
	e.must("run", "--name", "e1", "busybox", "true")
	e.must("volume", "create", "v1")
	checkExitCases(t, "berth", e.run, exitCases(t, e.dir))
}

// TestExitCodesOfDockerItself runs the same table against a private dockerd,
// so that the table stays docker's and not berth's.
func TestExitCodesOfDockerItself(t *testing.T) {
	// "berth" in its path would be rewritten to "docker" by the comparison.
	d := testutil.StartDockerd(t, "dkcmp-")
	dk := func(args ...string) result {
		t.Helper()
		r := d.Run(nil, args...)
		if r.Code < 0 {
			t.Fatalf("docker %v: %s", args, r.Stderr)
		}
		return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code}
	}
	for _, args := range [][]string{
		{"import", testutil.BusyboxTar(t), "busybox:latest"},
		{"run", "-d", "--name", "r1", "--network", "none", "busybox", "sleep", "1000"},
		{"run", "--name", "e1", "--network", "none", "busybox", "true"},
		{"volume", "create", "v1"},
	} {
		if r := dk(args...); r.code != 0 {
			t.Fatalf("docker %s: %s", strings.Join(args, " "), r)
		}
	}
	t.Cleanup(func() { dk("rm", "-f", "r1") })
	checkExitCases(t, "docker", dk, exitCases(t, d.Dir))
}

// TestFailedRunLeavesNothing: a run refused by the engine leaves no
// container, directory, mount or volume; a --rm container whose start
// fails is removed; a plain run whose start fails leaves a Created
// container with docker's exit code 128 and the error.
func TestFailedRunLeavesNothing(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{
		{"run", "--cap-add", "BOGUS", "-v", "/anon", "busybox", "true"},
		{"run", "--cpus", "99", "-v", "/anon", "busybox", "true"},
		{"run", "--rm", "-u", "nosuchuser", "-v", "/anon", "busybox", "true"},
		{"run", "--rm", "-u", "nobody:nosuchgroup", "busybox", "true"},
		{"run", "--rm", "-d", "-u", "nosuchuser", "busybox", "true"},
		{"run", "--rm", "-v", "/anon", "busybox", "nosuchcmd"},
		{"run", "--rm", "busybox", "/etc"},
		{"run", "--rm", "-d", "busybox", "nosuchcmd"},
		{"create", "--cap-add", "BOGUS", "busybox", "true"},
		{"create", "--name", "x", "--volumes-from", "nosuch", "busybox", "true"},
	} {
		if r := e.run(args...); r.code == 0 {
			t.Fatalf("berth %s succeeded: %s", strings.Join(args, " "), r)
		}
		e.assertNothingLeft(strings.Join(args, " "))
	}
	r := e.run("run", "--name", "plain", "-u", "nosuchuser", "busybox", "true")
	if r.code != 125 {
		t.Fatalf("run -u nosuchuser: %s", r)
	}
	if got := e.inspect("plain", "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}"); got != "created 128 unable to find user nosuchuser: no matching entries in passwd file" {
		t.Fatalf("after a failed start: %q", got)
	}
	e.must("rm", "plain")
	e.assertNothingLeft("rm of the created container")

	// A name already taken is found only when the record is written, after
	// the anonymous volume was made: that volume goes too.
	e.must("create", "--name", "taken", "busybox", "true")
	if r := e.run("run", "--name", "taken", "-v", "/anon", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "is already in use") {
		t.Fatalf("run with a taken name: %s", r)
	}
	if out := strings.TrimSpace(e.must("volume", "ls", "-q")); out != "" {
		t.Fatalf("volumes left after a name conflict: %q", out)
	}
}

// assertNothingLeft fails unless e holds no container, no container
// directory under the root or runroot, no volume and no mount.
func (e *env) assertNothingLeft(after string) {
	e.t.Helper()
	if out := strings.TrimSpace(e.must("ps", "-aq")); out != "" {
		e.t.Fatalf("after %s: containers left: %q", after, out)
	}
	if out := strings.TrimSpace(e.must("volume", "ls", "-q")); out != "" {
		e.t.Fatalf("after %s: volumes left: %q", after, out)
	}
	for _, dir := range []string{filepath.Join(e.root, "containers"), filepath.Join(e.runroot, "containers")} {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			e.t.Fatalf("after %s: %s holds %s", after, dir, ents[0].Name())
		}
	}
	// The built-in runtime's sealed binary (runroot/runtime/berth/exe*)
	// is shared by every container and stays by design, and so does the
	// shared mount of the directory of network namespaces (not the
	// namespaces in it).
	sealed := filepath.Join(e.runroot, "runtime", "berth", "exe")
	netnsDir := filepath.Join(e.runroot, "netns")
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.dir) && !strings.HasPrefix(f[4], sealed) && f[4] != netnsDir {
			e.t.Fatalf("after %s: mount left at %s", after, f[4])
		}
	}
}

// TestHostNetworkIdentity: with --network host a container is named as
// the host is (docker sets Config.Hostname so), unless -h says otherwise;
// an environment variable whose name holds a space is passed as docker
// passes it.
func TestHostNetworkIdentity(t *testing.T) {
	e := newEnv(t)
	want, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if out := strings.TrimSpace(e.must("run", "--name", "hn", "--network", "host", "busybox", "sh", "-c", "hostname; cat /etc/hostname")); out != want+"\n"+want {
		t.Fatalf("hostname in a host-network container: %q, want %q twice", out, want)
	}
	if got := e.inspect("hn", "{{.Config.Hostname}}"); got != want {
		t.Fatalf("Config.Hostname %q, want %q", got, want)
	}
	if out := strings.TrimSpace(e.must("run", "--rm", "--network", "host", "-h", "own", "busybox", "hostname")); out != "own" {
		t.Fatalf("-h with host network: %q", out)
	}
	out := e.must("run", "--name", "env", "-e", "BAD NAME=1", "busybox", "env")
	if !strings.Contains(out, "\nBAD NAME=1\n") {
		t.Fatalf("env lacks \"BAD NAME=1\":\n%s", out)
	}
	if got := e.inspect("env", "{{json .Config.Env}}"); !strings.Contains(got, `"BAD NAME=1"`) {
		t.Fatalf("Config.Env: %s", got)
	}
}

// TestVolumesFrom: --volumes-from gives a container the volumes and binds
// of another, at the same places, with the mode of the source or the one
// the suffix names.
func TestVolumesFrom(t *testing.T) {
	e := newEnv(t)
	hostDir := filepath.Join(e.dir, "bind")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.must("volume", "create", "named")
	e.must("create", "--name", "src", "-v", "named:/data", "-v", hostDir+":/bind", "-v", "/anon", "-v", "named:/ro:ro", "--tmpfs", "/tmp", "busybox", "true")
	e.must("run", "--rm", "--volumes-from", "src", "busybox", "sh", "-c", "echo v > /data/f && echo b > /bind/f && echo a > /anon/f")
	if b, err := os.ReadFile(filepath.Join(hostDir, "f")); err != nil || string(b) != "b\n" {
		t.Fatalf("bind through --volumes-from: %q %v", b, err)
	}
	if out := e.must("run", "--rm", "-v", "named:/x", "busybox", "cat", "/x/f"); out != "v\n" {
		t.Fatalf("named volume through --volumes-from: %q", out)
	}
	// The anonymous volume is shared, not a new one.
	if out := e.must("run", "--rm", "--volumes-from", "src", "busybox", "cat", "/anon/f"); out != "a\n" {
		t.Fatalf("anonymous volume through --volumes-from: %q", out)
	}
	// Mode: the source's by default, :ro and :rw override it.
	if r := e.run("run", "--rm", "--volumes-from", "src", "busybox", "touch", "/ro/x"); r.code == 0 {
		t.Fatal("a read-only mount of the source became writable")
	}
	if r := e.run("run", "--rm", "--volumes-from", "src:ro", "busybox", "touch", "/data/x"); r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
		t.Fatalf("--volumes-from src:ro: %s", r)
	}
	e.must("run", "--rm", "--volumes-from", "src:rw", "busybox", "touch", "/ro/x")
	// Inspect: HostConfig.VolumesFrom as given, Mounts as the source's, no tmpfs.
	e.must("create", "--name", "user", "--volumes-from", "src:ro", "busybox", "true")
	if got := e.inspect("user", "{{json .HostConfig.VolumesFrom}}"); got != `["src:ro"]` {
		t.Fatalf("HostConfig.VolumesFrom %s", got)
	}
	got := e.inspect("user", "{{range .Mounts}}{{.Type}} {{.Destination}} {{.RW}};{{end}}")
	for _, want := range []string{"volume /data false;", "bind /bind false;", "volume /anon false;", "volume /ro false;"} {
		if !strings.Contains(got, want) {
			t.Fatalf("Mounts %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "/tmp") {
		t.Fatalf("tmpfs inherited: %q", got)
	}
	// Removing the user with -v keeps the source's anonymous volume.
	anon := e.inspect("src", `{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}{{end}}`)
	e.must("rm", "-v", "user")
	if out := e.must("volume", "ls", "-q"); !strings.Contains(out, anon) {
		t.Fatalf("rm -v of the user removed the source's volume %s: %q", anon, out)
	}
	// Unknown container: docker's error, nothing created.
	if r := e.run("run", "--rm", "--volumes-from", "nosuch", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "No such container: nosuch") {
		t.Fatalf("unknown source: %s", r)
	}
}
