package ocicli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
)

func TestIsRuntimeName(t *testing.T) {
	for argv0, want := range map[string]bool{
		"berth-runc": true, "/usr/local/bin/berth-runc": true, "runc": true, "/x/runc": true,
		"berth": false, "/usr/bin/berth": false, "runc-shim": false, "berth-init": false,
	} {
		if got := IsRuntimeName(argv0); got != want {
			t.Errorf("IsRuntimeName(%q) = %v, want %v", argv0, got, want)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"abc", "a.b-c_d+e", "0123456789abcdef", "X"} {
		if err := ValidateID(id); err != nil {
			t.Errorf("ValidateID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "../x", "a/b", "a b", "x\x00", "é"} {
		if err := ValidateID(id); err == nil {
			t.Errorf("ValidateID(%q) accepted it", id)
		}
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"9", 9, true}, {"KILL", 9, true}, {"SIGKILL", 9, true}, {"kill", 9, true}, {"sigterm", 15, true},
		{"TERM", 15, true}, {"HUP", 1, true}, {"USR1", 10, true}, {"WINCH", 28, true}, {"RTMIN+2", 36, true},
		{"0", 0, false}, {"65", 0, false}, {"FOO", 0, false}, {"", 0, false}, {"-9", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSignal(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSignal(%q) = %d, %v; want %d (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// run calls the command line with args and returns its exit status,
// stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	c := &cli{name: "berth-runc", stdin: nil, stdout: &out, stderr: &errOut}
	code, err := c.main(context.Background(), args)
	if err != nil {
		c.fatal(err)
		code = 1
	}
	return code, out.String(), errOut.String()
}

func TestGlobalFlags(t *testing.T) {
	root := t.TempDir()
	log := filepath.Join(t.TempDir(), "log.json")
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderr  string
		logJSON string // the msg of the JSON log line, if any
	}{
		{name: "version", args: []string{"--version"}, stdout: "berth-runc version"},
		{name: "help", args: []string{"--help"}, stdout: "usage: berth-runc"},
		{name: "no command", args: nil, stdout: "usage:"},
		{name: "unknown command", args: []string{"--root", root, "frobnicate"}, code: 1, stderr: "No help topic for 'frobnicate'"},
		{name: "systemd cgroup refused", args: []string{"--systemd-cgroup", "state", "x"}, code: 1, stderr: "--systemd-cgroup"},
		{name: "bad log format", args: []string{"--log-format", "xml", "list"}, code: 1, stderr: "invalid log-format"},
		{name: "unknown flag", args: []string{"--frob", "list"}, code: 1, stderr: "unknown flag"},
		{name: "state of unknown container, logged as JSON", args: []string{"--root", root, "--log", log, "--log-format", "json", "state", "nope"},
			code: 1, stderr: "container does not exist", logJSON: "container does not exist"},
		{name: "state needs an id", args: []string{"--root", root, "state"}, code: 1, stderr: "requires a container id"},
		{name: "kill: too many arguments", args: []string{"--root", root, "kill", "a", "KILL", "x"}, code: 1, stderr: "maximum of 2"},
		{name: "kill: bad signal", args: []string{"--root", root, "kill", "a", "FOO"}, code: 1, stderr: "unknown signal"},
		{name: "delete unknown", args: []string{"--root", root, "delete", "nope"}, code: 1, stderr: "container does not exist"},
		{name: "delete --force unknown", args: []string{"--root", root, "delete", "--force", "nope"}},
		{name: "create: bad id", args: []string{"--root", root, "create", "--bundle", root, "../x"}, code: 1, stderr: "invalid container id"},
		{name: "create: no pivot", args: []string{"--root", root, "create", "--no-pivot", "x"}, code: 1, stderr: "--no-pivot"},
		{name: "create: no config.json", args: []string{"--root", root, "create", "-b", root, "--no-new-keyring", "x"}, code: 1, stderr: "config.json not found"},
		{name: "list empty", args: []string{"--root", root, "list", "-q"}},
		{name: "list json", args: []string{"--root", root, "list", "--format", "json"}, stdout: "[]"},
		{name: "ps unknown", args: []string{"--root", root, "ps", "--format", "json", "nope"}, code: 1, stderr: "container does not exist"},
		{name: "features", args: []string{"features"}, stdout: `"ociVersionMin": "1.0.0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
			if tt.logJSON == "" {
				return
			}
			raw, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			var entry struct{ Level, Msg, Time string }
			if err := json.Unmarshal(bytes.TrimSpace(raw), &entry); err != nil || entry.Level != "error" || entry.Msg != tt.logJSON || entry.Time == "" {
				t.Errorf("log %q: %+v, %v", raw, entry, err)
			}
		})
	}
}

func TestLogLineText(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got, want := string(logLine("text", "error", `bad "x"`, at)), "time=\"2026-01-02T03:04:05Z\" level=error msg=\"bad \\\"x\\\"\"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestStateJSON: state prints runc's field names and shape.
func TestStateJSON(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	info := &runtime.Info{
		State:   specs.State{Version: "1.0.2", ID: "c1", Status: specs.StateCreated, Pid: 42, Bundle: "/b", Annotations: map[string]string{"k": "v"}},
		Rootfs:  "/b/rootfs",
		Created: created,
	}
	raw, err := json.Marshal(toStateJSON(info))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"ociVersion": "1.0.2", "id": "c1", "pid": float64(42), "status": "created", "bundle": "/b",
		"rootfs": "/b/rootfs", "created": "2026-01-02T03:04:05.000000006Z",
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (in %s)", key, got[key], want, raw)
		}
	}
	if _, ok := got["owner"]; !ok {
		t.Errorf("no owner in %s", raw)
	}
	if a, _ := got["annotations"].(map[string]any); a["k"] != "v" {
		t.Errorf("annotations in %s", raw)
	}
}

func TestExecProcessFromFlags(t *testing.T) {
	base := &specs.Process{
		Args: []string{"sh"}, Env: []string{"PATH=/bin"}, Cwd: "/", User: specs.User{UID: 5, GID: 6},
		Capabilities: &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}},
	}
	f := &execFlags{tty: true, cwd: "/tmp", user: "7:8", env: []string{"A=1"}, additionalGids: []string{"9"}, caps: []string{"CAP_CHOWN"}}
	p, err := f.build(base, []string{"id", "-u"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Args, " ") != "id -u" || !p.Terminal || p.Cwd != "/tmp" || p.User.UID != 7 || p.User.GID != 8 ||
		strings.Join(p.Env, ",") != "PATH=/bin,A=1" || len(p.User.AdditionalGids) != 1 || p.User.AdditionalGids[0] != 9 ||
		strings.Join(p.Capabilities.Bounding, ",") != "CAP_KILL,CAP_CHOWN" {
		t.Errorf("process = %+v", p)
	}
	if strings.Join(base.Env, ",") != "PATH=/bin" || len(base.Capabilities.Bounding) != 1 {
		t.Error("the container's process was changed")
	}
	if _, err := (&execFlags{user: "root"}).build(base, []string{"x"}); err == nil {
		t.Error("a user name was accepted; runc takes uid[:gid]")
	}
}

// TestIDsAreNames: no command takes a path for a container id.
func TestIDsAreNames(t *testing.T) {
	root := t.TempDir()
	for _, cmd := range []string{"state", "start", "kill", "delete", "pause", "resume", "ps", "exec", "update"} {
		code, _, errOut := run(t, "--root", root, cmd, "../../etc")
		if code != 1 || !strings.Contains(errOut, "invalid container id") {
			t.Errorf("%s ../../etc: exit %d, %q", cmd, code, errOut)
		}
	}
}
