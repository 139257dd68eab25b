package diff

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// An engine is one CLI with its state: berth with a root of its own per
// case, or the docker CLI against one Docker engine shared by all cases.
type engine struct {
	kind  string   // "berth" or "docker"
	bin   string   // the CLI
	base  []string // arguments before the command: --root..., or -H
	paths map[string]string

	busyboxTar string // docker: what resetDocker imports as busybox:latest
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// exec runs the CLI with args; a command that cannot be started or runs
// past its deadline is an error (exit -1 and what happened on stderr).
func (e *engine) exec(args []string, stdin string, timeout time.Duration) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, append(append([]string{}, e.base...), args...)...)
	cmd.Env = append(os.Environ(), "BERTH_ROOT=", "BERTH_RUNROOT=", "DOCKER_HOST=", "DOCKER_CONTEXT=", "DOCKER_CONFIG="+filepath.Join(os.TempDir(), "berth-diff-docker-config"))
	cmd.WaitDelay = 5 * time.Second
	return runCmd(ctx, cmd, stdin)
}

func runCmd(ctx context.Context, cmd *exec.Cmd, stdin string) result {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok && ctx.Err() == nil {
		r.code = ee.ExitCode()
	} else if err != nil {
		r.code = -1
		r.stderr += fmt.Sprintf("\n[%s: %v, context: %v]", strings.Join(cmd.Args, " "), err, ctx.Err())
	}
	return r
}

// newBerthRoot makes a berth installation for one case under dir, with
// the suite's busybox image imported as busybox:latest.
func newBerthRoot(bin, dir, busyboxTar string) (*engine, error) {
	e := &engine{kind: "berth", bin: bin,
		base:  []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run")},
		paths: map[string]string{filepath.Join(dir, "root"): "<root>", filepath.Join(dir, "run"): "<runroot>"}}
	tar, err := os.ReadFile(busyboxTar)
	if err != nil {
		return nil, err
	}
	if r := e.exec([]string{"import", "-", "busybox:latest"}, string(tar), time.Minute); r.code != 0 {
		return nil, fmt.Errorf("berth import: %s", r)
	}
	return e, nil
}

// sweepBerthRoot removes every container of a case's berth root (their
// monitors, cgroups and mounts go with them), then whatever berth could
// not. It returns what berth itself left in the kernel.
func sweepBerthRoot(e *engine, dir string) []string {
	if ids := strings.Fields(e.exec([]string{"ps", "-aq", "--no-trunc"}, "", time.Minute).stdout); len(ids) > 0 {
		e.exec(append([]string{"rm", "-f", "-v"}, ids...), "", 2*time.Minute)
	}
	// Networks go the ordinary way: their bridges leave the kernel, and
	// with the last one the root's nftables table.
	e.exec([]string{"network", "prune", "-f"}, "", time.Minute)
	left := testutil.DataplaneLeft(testutil.RootTable(filepath.Join(dir, "root")))
	testutil.SweepDir(dir)
	return left
}

// dockerEngine finds the Docker engine to compare with: the one named by
// BERTH_DIFF_DOCKER_HOST (never DOCKER_HOST: the serial cases prune
// everything, and a user's own engine must not lose its containers), else
// a private dockerd started under dir. It returns nil when there is none,
// which fails in CI.
func dockerEngine(t *testing.T, dir, busyboxTar string) *engine {
	docker, err := exec.LookPath("docker")
	if err != nil {
		if testutil.InCI() || *update {
			t.Fatal("docker CLI not installed (scripts/deps.sh installs docker.io)")
		}
		return nil
	}
	var e *engine
	host := os.Getenv("BERTH_DIFF_DOCKER_HOST")
	if host == "" {
		dockerd, err := exec.LookPath("dockerd")
		if err != nil || os.Geteuid() != 0 {
			if testutil.InCI() || *update {
				t.Fatalf("no Docker engine to compare with: dockerd (docker.io) must be installed and the test run as root, or BERTH_DIFF_DOCKER_HOST set")
			}
			return nil
		}
		// Docker keeps a user network's bridge (br-<id>) when it stops:
		// after it stopped, the bridges of the networks it had go too.
		var networkIDs []string
		t.Cleanup(func() { removeDockerBridges(t, networkIDs) })
		host = startDockerd(t, dockerd, filepath.Join(dir, "dockerd"))
		// Before the daemon stops (cleanups run last first): what the
		// cases made goes the ordinary way.
		t.Cleanup(func() {
			if e != nil {
				resetContainers(e)
				networkIDs = strings.Fields(e.exec([]string{"network", "ls", "-q", "--no-trunc"}, "", time.Minute).stdout)
				e.exec([]string{"network", "prune", "-f"}, "", time.Minute)
			}
		})
	}
	e = &engine{kind: "docker", bin: docker, base: []string{"-H", host}, paths: map[string]string{filepath.Join(dir, "dockerd", "data"): "<root>"}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.exec([]string{"version", "--format", "{{.Server.Version}}"}, "", 10*time.Second)
		if r.code == 0 {
			t.Logf("comparing with Docker %s at %s", strings.TrimSpace(r.stdout), host)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Docker at %s does not answer: %s", host, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.busyboxTar = busyboxTar
	resetDocker(t, e)
	return e
}

// removeDockerBridges deletes the bridges Docker made for the networks
// ids (br- and the ID's first 12 characters) that are still there.
func removeDockerBridges(t *testing.T, ids []string) {
	for _, id := range ids {
		if len(id) < 12 {
			continue
		}
		l, err := netlink.LinkByName("br-" + id[:12])
		if err != nil {
			continue // not a bridge network, or removed with it
		}
		if err := netlink.LinkDel(l); err != nil {
			t.Logf("cleanup: deleting Docker's bridge %s: %v", l.Attrs().Name, err)
		}
	}
}

// startDockerd starts a dockerd of the test's own (data and exec roots,
// socket and pid file under dir; no bridge, no iptables) and stops it by
// its pid when the test ends.
func startDockerd(t *testing.T, dockerd, dir string) string {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	logFile, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	// As under systemd (docker.service has LimitNOFILE=infinity), the
	// daemon and so its containers get 1048576 open files whatever the
	// test's caller had: the RLIMIT_NOFILE cases compare with that.
	d := exec.Command("sh", "-c", `ulimit -Hn 1048576 && ulimit -Sn 1048576; exec "$0" "$@"`, dockerd,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://"+sock, "--pidfile", filepath.Join(dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false")
	// Nothing here may leave the machine: a pull (a case naming an image
	// that is not there) goes to a proxy on loopback that refuses it.
	d.Env = append(os.Environ(), "HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9", "NO_PROXY=", "http_proxy=", "https_proxy=", "no_proxy=")
	d.Stdout, d.Stderr = logFile, logFile
	d.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Process.Signal(unix.SIGTERM)
		done := make(chan struct{})
		go func() { d.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Log("dockerd did not stop on TERM; killing it")
			d.Process.Kill()
			<-done
		}
		// The containerd it started is its child; make sure it is gone.
		if raw, err := os.ReadFile(filepath.Join(dir, "exec", "containerd", "containerd.pid")); err == nil {
			var pid int
			if fmt.Sscan(string(raw), &pid); pid > 1 && unix.Kill(pid, 0) == nil {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		logFile.Close()
		if t.Failed() {
			if raw, err := os.ReadFile(logFile.Name()); err == nil && len(raw) > 3000 {
				t.Logf("dockerd log (tail):\n%s", raw[len(raw)-3000:])
			}
		}
	})
	return "unix://" + sock
}

// resetDocker brings the Docker engine back to only busybox:latest: no
// containers, volumes or other images.
func resetDocker(t *testing.T, e *engine) {
	resetContainers(e)
	e.exec([]string{"network", "prune", "-f"}, "", time.Minute)
	if vols := strings.Fields(e.exec([]string{"volume", "ls", "-q"}, "", time.Minute).stdout); len(vols) > 0 {
		e.exec(append([]string{"volume", "rm", "-f"}, vols...), "", time.Minute)
	}
	var rmi []string
	for _, l := range strings.Split(e.exec([]string{"images", "-a", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"}, "", time.Minute).stdout, "\n") {
		id, ref, ok := strings.Cut(l, " ")
		switch {
		case !ok || ref == "busybox:latest":
		case ref == "<none>:<none>":
			rmi = append(rmi, id)
		default:
			rmi = append(rmi, ref)
		}
	}
	if len(rmi) > 0 {
		e.exec(append([]string{"rmi", "-f"}, rmi...), "", time.Minute)
	}
	// A case may have pruned it (image prune -a).
	if r := e.exec([]string{"images", "-q", "busybox:latest"}, "", time.Minute); strings.TrimSpace(r.stdout) == "" {
		tar, err := os.ReadFile(e.busyboxTar)
		if err != nil {
			t.Fatal(err)
		}
		if r := e.exec([]string{"import", "-", "busybox:latest"}, string(tar), time.Minute); r.code != 0 {
			t.Fatalf("docker import: %s", r)
		}
	}
}

// resetContainers removes every container of the Docker engine.
func resetContainers(e *engine) {
	if ids := strings.Fields(e.exec([]string{"ps", "-aq"}, "", time.Minute).stdout); len(ids) > 0 {
		e.exec(append([]string{"rm", "-f", "-v"}, ids...), "", 2*time.Minute)
	}
}

// sweepDockerCase removes what a case made in Docker under its own names.
func sweepDockerCase(e *engine, prefix string) {
	if ids := strings.Fields(e.exec([]string{"ps", "-aq", "--filter", "name=" + prefix}, "", time.Minute).stdout); len(ids) > 0 {
		e.exec(append([]string{"rm", "-f", "-v"}, ids...), "", 2*time.Minute)
	}
	if vols := strings.Fields(e.exec([]string{"volume", "ls", "-q", "--filter", "name=" + prefix}, "", time.Minute).stdout); len(vols) > 0 {
		e.exec(append([]string{"volume", "rm", "-f"}, vols...), "", time.Minute)
	}
	if nets := strings.Fields(e.exec([]string{"network", "ls", "-q", "--filter", "name=" + prefix}, "", time.Minute).stdout); len(nets) > 0 {
		e.exec(append([]string{"network", "rm"}, nets...), "", time.Minute)
	}
	var rmi []string
	for _, ref := range strings.Fields(e.exec([]string{"images", "--format", "{{.Repository}}:{{.Tag}}"}, "", time.Minute).stdout) {
		if strings.HasPrefix(ref, prefix) {
			rmi = append(rmi, ref)
		}
	}
	if len(rmi) > 0 {
		e.exec(append([]string{"rmi", "-f"}, rmi...), "", time.Minute)
	}
}
