package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestRunExitCodes(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{"echo", []string{"run", "--rm", "busybox", "echo", "hello"}, 0, "hello\n", ""},
		{"own exit code", []string{"run", "--rm", "busybox", "sh", "-c", "exit 3"}, 3, "", ""},
		{"child killed by signal", []string{"run", "--rm", "busybox", "sh", "-c", "sh -c 'kill -9 $$'; exit $?"}, 137, "", ""},
		{"command not found", []string{"run", "--rm", "busybox", "nosuchcmd"}, 127, "", "executable file not found"},
		{"not executable", []string{"run", "--rm", "busybox", "/etc/passwd"}, 126, "", "permission denied"},
		{"unknown flag", []string{"run", "--rm", "--nosuchflag", "busybox", "true"}, 125, "", "unknown flag"},
		{"missing image", []string{"run", "--rm", "nosuchimage", "true"}, 125, "", "Unable to find image 'nosuchimage:latest' locally"},
		{"no command", []string{"run", "--rm", "--entrypoint", "", "busybox"}, 125, "", "No command specified"},
		{"bad restart policy", []string{"run", "--restart", "sometimes", "busybox", "true"}, 125, "", "restart policy"},
		{"stderr kept apart", []string{"run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2"}, 0, "out\n", "err\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d\n%s", r.code, tc.code, r)
			}
			if tc.stdout != "" && r.stdout != tc.stdout {
				t.Fatalf("stdout %q, want %q", r.stdout, tc.stdout)
			}
			if tc.stderrIn != "" && !strings.Contains(r.stderr, tc.stderrIn) {
				t.Fatalf("stderr %q lacks %q", r.stderr, tc.stderrIn)
			}
		})
	}
	// Nothing half-created remains: every --rm container is gone, and so
	// are the monitors that run started ahead for the containers whose
	// creation failed.
	if out := strings.TrimSpace(e.must("ps", "-aq")); out != "" {
		t.Fatalf("containers left behind: %q", out)
	}
	eventually(t, 10*time.Second, "no monitor process left", func() bool { return len(e.monitorProcesses()) == 0 })
}

// monitorProcesses lists the command lines of the monitors of e's root.
func (e *env) monitorProcesses() []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) > 1 && args[1] == "_monitor" && slices.Contains(args, e.root) {
			out = append(out, strings.Join(args, " "))
		}
	}
	return out
}

func TestEntrypointCmd(t *testing.T) {
	e := newEnv(t)
	tar := filepath.Join(e.dir, "bb.tar")
	copyFile(t, testutil.BusyboxTar(t), tar)
	e.must("import", "--change", `ENTRYPOINT ["echo","ep"]`, "--change", `CMD ["default"]`, tar, "withep:1")
	e.must("import", "--change", `CMD ["echo","cmd-only"]`, tar, "cmdonly:1")
	e.must("import", "--change", `ENTRYPOINT echo shell-ep`, "--change", `CMD ["ignored"]`, tar, "shellep:1")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"image entrypoint and cmd", []string{"withep:1"}, "ep default"},
		{"args replace cmd", []string{"withep:1", "a", "b"}, "ep a b"},
		{"entrypoint flag drops image cmd", []string{"--entrypoint", "echo", "withep:1"}, ""},
		{"entrypoint flag with args", []string{"--entrypoint", "echo", "withep:1", "x"}, "x"},
		{"cmd only", []string{"cmdonly:1"}, "cmd-only"},
		{"cmd replaced", []string{"cmdonly:1", "echo", "replaced"}, "replaced"},
		{"shell-form entrypoint ignores cmd", []string{"shellep:1", "extra"}, "shell-ep"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := e.must(append([]string{"run", "--rm"}, tc.args...)...)
			if strings.TrimSpace(out) != tc.want {
				t.Fatalf("output %q, want %q", out, tc.want)
			}
		})
	}
}

func TestEnvUserWorkdir(t *testing.T) {
	e := newEnv(t)
	envFile := filepath.Join(e.dir, "env")
	os.WriteFile(envFile, []byte("# comment\nFROM_FILE=yes\nB=from-file\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"env flag", []string{"-e", "A=1", "busybox", "sh", "-c", "echo $A"}, "1"},
		{"env file then flag", []string{"--env-file", envFile, "-e", "B=flag", "busybox", "sh", "-c", "echo $FROM_FILE $B"}, "yes flag"},
		{"default PATH and HOSTNAME", []string{"--hostname", "box1", "busybox", "sh", "-c", "echo $PATH $HOSTNAME"}, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin box1"},
		{"user by name", []string{"-u", "nobody", "busybox", "id"}, "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)"},
		{"user uid:gid", []string{"-u", "1234:5678", "busybox", "id"}, "uid=1234 gid=5678 groups=5678"},
		{"workdir created", []string{"-w", "/made/here", "busybox", "pwd"}, "/made/here"},
		{"init as pid 1", []string{"--init", "busybox", "sh", "-c", "cat /proc/1/comm"}, "docker-init"},
		{"hostname file", []string{"--hostname", "h2", "busybox", "cat", "/etc/hostname"}, "h2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := e.must(append([]string{"run", "--rm"}, tc.args...)...)
			if strings.TrimSpace(out) != tc.want {
				t.Fatalf("output %q, want %q", out, tc.want)
			}
		})
	}
	r := e.run("run", "--rm", "-u", "nosuchuser", "busybox", "id")
	if r.code != 125 && r.code != 126 || !strings.Contains(r.stderr, "nosuchuser") {
		t.Fatalf("unknown user: %s", r)
	}
}

func TestVolumes(t *testing.T) {
	e := newEnv(t)
	host := filepath.Join(e.dir, "hostdir")
	os.MkdirAll(host, 0o755)
	os.WriteFile(filepath.Join(host, "in.txt"), []byte("from host"), 0o644)

	// Bind mount: both directions, and read-only.
	if out := e.must("run", "--rm", "-v", host+":/mnt", "busybox", "sh", "-c", "cat /mnt/in.txt; echo back > /mnt/out.txt"); out != "from host" {
		t.Fatalf("bind read: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "out.txt")); string(b) != "back\n" {
		t.Fatalf("bind write: %q", b)
	}
	if r := e.run("run", "--rm", "-v", host+":/mnt:ro", "busybox", "touch", "/mnt/x"); r.code == 0 {
		t.Fatal("write to a read-only bind succeeded")
	}

	// Named volume: data survives the container.
	e.must("run", "--name", "writer", "-v", "keep:/data", "busybox", "sh", "-c", "echo persisted > /data/f")
	e.must("rm", "writer")
	if out := e.must("run", "--rm", "-v", "keep:/data", "busybox", "cat", "/data/f"); out != "persisted\n" {
		t.Fatalf("named volume content: %q", out)
	}
	if !strings.Contains(e.must("volume", "ls"), "keep") {
		t.Fatal("volume ls lacks keep")
	}
	// A volume in use cannot be removed.
	e.must("run", "-d", "--name", "user", "-v", "keep:/data", "busybox", "sleep", "100")
	if r := e.run("volume", "rm", "keep"); r.code == 0 || !strings.Contains(r.stderr, "in use") {
		t.Fatalf("removing a volume in use: %s", r)
	}
	e.must("rm", "-f", "user")
	e.must("volume", "rm", "keep")

	// tmpfs: writable, gone afterwards, and options apply.
	out := e.must("run", "--rm", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c", "echo x > /scratch/f && grep /scratch /proc/mounts")
	if !strings.Contains(out, "tmpfs") || !strings.Contains(out, "size=1024k") {
		t.Fatalf("tmpfs mount: %q", out)
	}
	out = e.must("run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=2m", "busybox", "grep", "/t", "/proc/mounts")
	if !strings.Contains(out, "size=2048k") {
		t.Fatalf("--mount tmpfs: %q", out)
	}

	// Anonymous volumes go with rm -v.
	e.must("run", "--name", "anon", "-v", "/anon", "busybox", "true")
	vols := strings.Fields(e.must("volume", "ls", "-q"))
	if len(vols) != 1 {
		t.Fatalf("anonymous volume not created: %v", vols)
	}
	e.must("rm", "-v", "anon")
	if vols := strings.Fields(e.must("volume", "ls", "-q")); len(vols) != 0 {
		t.Fatalf("anonymous volume left after rm -v: %v", vols)
	}
}

func TestReadOnlyAndCapabilities(t *testing.T) {
	e := newEnv(t)
	if r := e.run("run", "--rm", "--read-only", "busybox", "touch", "/x"); r.code == 0 {
		t.Fatal("write to a read-only rootfs succeeded")
	}
	// /tmp via --tmpfs stays writable on a read-only rootfs.
	e.must("run", "--rm", "--read-only", "--tmpfs", "/tmp", "busybox", "touch", "/tmp/x")
	e.must("run", "--rm", "busybox", "chown", "nobody", "/tmp")
	r := e.run("run", "--rm", "--cap-drop", "CHOWN", "busybox", "chown", "nobody", "/tmp")
	if r.code == 0 || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Fatalf("chown after --cap-drop CHOWN: %s", r)
	}
	// The default set lacks NET_ADMIN; --cap-add grants it.
	if r := e.run("run", "--rm", "busybox", "ip", "link", "set", "lo", "down"); r.code == 0 {
		t.Fatal("NET_ADMIN allowed by default")
	}
	e.must("run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "ip", "link", "set", "lo", "down")
	// Masked paths.
	// Masked paths: /proc/timer_list reads as /dev/null; /proc/sys is read-only.
	if out := e.must("run", "--rm", "busybox", "sh", "-c", "wc -c < /proc/timer_list"); strings.TrimSpace(out) != "0" {
		t.Fatalf("/proc/timer_list not masked: %q", out)
	}
	if r := e.run("run", "--rm", "busybox", "sh", "-c", "echo 1 > /proc/sys/kernel/panic"); r.code == 0 {
		t.Fatal("/proc/sys is writable")
	}
	// seccomp: namespace creation is refused without CAP_SYS_ADMIN.
	if r := e.run("run", "--rm", "busybox", "unshare", "-U", "true"); r.code == 0 {
		t.Fatal("unshare allowed under the default seccomp profile")
	}
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
