package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// gatedRun writes a bundle for opts and runs it with RunGated.
func gatedRun(t *testing.T, e *testEnv, opts SpecOptions, gate func(ctx context.Context, id string) error) (*created, error) {
	t.Helper()
	b := e.rt.(*Builtin)
	id := e.newID(t)
	spec, err := Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	if err := b.WriteBundle(bundle, spec); err != nil {
		t.Fatal(err)
	}
	c := &created{id: id, bundle: bundle}
	var outW, errW *os.File
	c.stdout, outW = newCapture(t)
	c.stderr, errW = newCapture(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pidFile := filepath.Join(bundle, "init.pid")
	err = b.RunGated(ctx, id, bundle, pidFile, IO{Stdout: outW, Stderr: errW}, func(ctx context.Context) error { return gate(ctx, id) })
	outW.Close()
	errW.Close()
	if err != nil {
		return c, err
	}
	if c.pid, err = readTestPid(pidFile); err != nil {
		t.Fatal(err)
	}
	return c, nil
}

func readTestPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var pid int
	_, err = fmt.Sscan(string(b), &pid)
	return pid, err
}

// awaitAtGate polls until container id's init waits at the gate: it has
// left the host's mounts behind (marker, a mount of the host's, is gone
// from its mount table: it pivoted into its root) and sleeps reading a
// pipe. An init that does not wait there exits instead, which is an error.
func awaitAtGate(ctx context.Context, b *Builtin, id, marker string) error {
	pid := 0
	for {
		if pid == 0 {
			if st, err := b.State(ctx, id); err == nil && st.Pid > 0 {
				pid = st.Pid
			}
		}
		if pid > 0 {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if _, after, _ := strings.Cut(string(stat), ") "); err != nil || strings.HasPrefix(after, "Z") {
				return errors.New("the init exited") // it did not wait
			}
			mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
			wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
			if !strings.Contains(string(mi), marker) && strings.Contains(string(wchan), "pipe_read") {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the init did not come to the gate: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// hostOnlyMount mounts a tmpfs the container's init takes along into its
// new mount namespace and drops at pivot_root.
func hostOnlyMount(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("hostonly-%d", time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// The command runs only after the gate returned, even when the init has
// long been ready: what the gate makes is there for it (as a container's
// network is for its first connect).
func TestRunGatedWaitsForGate(t *testing.T) {
	e := newTestEnv(t, BuiltinName)
	marker := hostOnlyMount(t)
	made := filepath.Join(e.rootfs, "made-by-gate")
	c, err := gatedRun(t, e, e.opts("cat", "/made-by-gate"), func(ctx context.Context, id string) error {
		// Held until the init waits: a runtime without the gate would
		// run the command instead.
		if err := awaitAtGate(ctx, e.rt.(*Builtin), id, marker); err != nil {
			return err
		}
		return os.WriteFile(made, []byte("ready\n"), 0o644)
	})
	if err != nil {
		t.Fatalf("RunGated: %v", err)
	}
	code := e.wait(t, c)
	if out := c.stdout.String(t); code != 0 || out != "ready\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and what the gate wrote", code, out, c.stderr.String(t))
	}
}

// The sysctls come after the gate too: they may name what it makes.
func TestRunGatedSysctlsAfterGate(t *testing.T) {
	e := newTestEnv(t, BuiltinName)
	marker := hostOnlyMount(t)
	opts := e.opts("cat", "/proc/sys/net/ipv4/conf/gate0/forwarding")
	netnsPath := testutil.NewNetNS(t)
	opts.NetworkMode = "ns:" + netnsPath
	opts.Sysctls = map[string]string{"net.ipv4.conf.gate0.forwarding": "1"}
	c, err := gatedRun(t, e, opts, func(ctx context.Context, id string) error {
		if err := awaitAtGate(ctx, e.rt.(*Builtin), id, marker); err != nil {
			return err
		}
		ns, err := netns.GetFromPath(netnsPath)
		if err != nil {
			return err
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			return err
		}
		defer h.Close()
		return h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gate0"}, PeerName: "gate1"})
	})
	if err != nil {
		t.Fatalf("RunGated: %v", err)
	}
	code := e.wait(t, c)
	if out := c.stdout.String(t); code != 0 || out != "1\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and the sysctl written on the gate's link", code, out, c.stderr.String(t))
	}
}

// A failing gate calls the start off: its error comes back as is, the
// command never runs, and nothing of the container is left.
func TestRunGatedGateFails(t *testing.T) {
	e := newTestEnv(t, BuiltinName)
	b := e.rt.(*Builtin)
	ran := filepath.Join(e.rootfs, "ran")
	boom := errors.New("port is already allocated")
	var id string
	_, err := gatedRun(t, e, e.opts("touch", "/ran"), func(ctx context.Context, cid string) error {
		id = cid
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("RunGated = %v, want the gate's error", err)
	}
	if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command ran after a failed gate (%v)", err)
	}
	if b.HasState(id) {
		t.Errorf("the runtime kept state for %s", id)
	}
	if _, err := os.Stat(b.stateDir(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory left: %v", err)
	}
}
