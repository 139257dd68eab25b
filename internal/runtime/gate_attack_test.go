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

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Review tests of RunGated (review/gate): the failures the gate can meet
// while the init waits, and what each must leave behind (nothing).

// gatedRunCtx is gatedRun with the caller's context.
func gatedRunCtx(t *testing.T, ctx context.Context, e *testEnv, opts SpecOptions, gate func(ctx context.Context, id string) error) (string, error) {
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
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	pidFile := filepath.Join(bundle, "init.pid")
	err = b.RunGated(ctx, id, bundle, pidFile, IO{Stdout: devnull, Stderr: devnull}, func(ctx context.Context) error { return gate(ctx, id) })
	return id, err
}

// assertNothingLeft fails unless container id's init, state and cgroup
// are gone.
func assertNothingLeft(t *testing.T, b *Builtin, id string, pid int) {
	t.Helper()
	if pid > 0 {
		if err := unix.Kill(pid, 0); err == nil {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			t.Errorf("the init (pid %d) is still there: %s", pid, stat)
		}
	}
	if b.HasState(id) {
		t.Errorf("the runtime kept state for %s", id)
	}
	for _, pattern := range []string{"/sys/fs/cgroup/*/berth/" + id, "/sys/fs/cgroup/berth/" + id} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			t.Errorf("cgroup left: %v", m)
		}
	}
}

// The realistic failure: the attach fails (a port taken) while the init
// waits at the gate, its mounts made. The init must be killed and reaped
// and its cgroup removed.
func TestReviewGateFailsWhileInitWaits(t *testing.T) {
	e := newTestEnv(t, BuiltinName)
	b := e.rt.(*Builtin)
	marker := hostOnlyMount(t)
	boom := errors.New("port is already allocated")
	pid := 0
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	id, err := gatedRunCtx(t, ctx, e, e.opts("touch", "/ran"), func(ctx context.Context, id string) error {
		if err := awaitAtGate(ctx, b, id, marker); err != nil {
			return err
		}
		st, err := b.State(ctx, id)
		if err != nil {
			return err
		}
		pid = st.Pid
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("RunGated = %v, want the gate's error", err)
	}
	if _, err := os.Stat(filepath.Join(e.rootfs, "ran")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command ran after a failed gate (%v)", err)
	}
	assertNothingLeft(t, b, id, pid)
}

// The init fails making its mounts while the attach goes on: RunGated
// returns only once the gate has (its caller must know what the gate
// made, to undo it), and the error is the init's.
func TestReviewInitFailsBeforeGate(t *testing.T) {
	e := newTestEnv(t, BuiltinName)
	b := e.rt.(*Builtin)
	opts := e.opts("true")
	// /etc/passwd is a file: a mount under it fails in the init.
	opts.Mounts = []Mount{{Type: "bind", Source: t.TempDir(), Destination: "/etc/passwd/sub", Options: []string{"rbind"}}}
	gateEnded := false
	pid := 0
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	id, err := gatedRunCtx(t, ctx, e, opts, func(ctx context.Context, id string) error {
		// Wait until the init has failed (exited) before finishing.
		for {
			if pid == 0 {
				if st, err := b.State(ctx, id); err == nil && st.Pid > 0 {
					pid = st.Pid
				}
			}
			if pid > 0 {
				stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
				if _, after, _ := strings.Cut(string(stat), ") "); strings.HasPrefix(after, "Z") || len(stat) == 0 {
					break
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
		gateEnded = true
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "/etc/passwd/sub") {
		t.Fatalf("RunGated = %v, want the init's mount error", err)
	}
	if !gateEnded {
		t.Error("RunGated returned before its gate")
	}
	assertNothingLeft(t, b, id, pid)
}

// The caller gives up (its context ends) while the init waits at the
// gate: the attach returns the context's error, and nothing is left.
func TestReviewGateCancelledWhileInitWaits(t *testing.T) {
	e := newTestEnv(t, BuiltinName)
	b := e.rt.(*Builtin)
	marker := hostOnlyMount(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pid := 0
	id, err := gatedRunCtx(t, ctx, e, e.opts("touch", "/ran"), func(gctx context.Context, id string) error {
		if err := awaitAtGate(gctx, b, id, marker); err != nil {
			return err
		}
		if st, err := b.State(gctx, id); err == nil {
			pid = st.Pid
		}
		cancel()
		<-gctx.Done() // an attach honouring its context
		return gctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RunGated = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(e.rootfs, "ran")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command ran after a cancelled start (%v)", err)
	}
	assertNothingLeft(t, b, id, pid)
}

// Known, not new with the gate (main has the same in the shorter window
// between clone and exec): an init killed before it executed the command
// (SIGKILL by an admin, the OOM killer) closes its report pipe empty,
// which RunGated reads as "the command runs". The gate makes the window
// as long as the attach. A gated init marks its exec (execMark).
func TestReviewInitKilledAtGateIsAnError(t *testing.T) {
	e := newTestEnv(t, BuiltinName)
	b := e.rt.(*Builtin)
	marker := hostOnlyMount(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := gatedRunCtx(t, ctx, e, e.opts("true"), func(ctx context.Context, id string) error {
		if err := awaitAtGate(ctx, b, id, marker); err != nil {
			return err
		}
		st, err := b.State(ctx, id)
		if err != nil {
			return err
		}
		return unix.Kill(st.Pid, unix.SIGKILL)
	})
	if err == nil {
		t.Fatal("RunGated succeeded although the init was killed before it executed the command")
	}
}

// The gate in the spec shapes the engine does not make today but the
// runtime accepts: a user namespace (the init waits inside it, after the
// parent moved it into its cgroup) and hooks (the gate runs first).
func TestReviewGateSpecVariants(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(s *specs.Spec)
	}{
		{"user namespace", func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}},
		{"hooks", func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/true"}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, BuiltinName)
			b := e.rt.(*Builtin)
			marker := hostOnlyMount(t)
			// A user namespace's root must reach the rootfs.
			for d := e.rootfs; strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
				if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o005 != 0o005 {
					os.Chmod(d, st.Mode().Perm()|0o005)
				}
			}
			made := filepath.Join(e.rootfs, "made-by-gate")
			id := e.newID(t)
			spec, err := Generate(e.opts("cat", "/made-by-gate"))
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(spec)
			bundle := t.TempDir()
			os.Chmod(bundle, 0o755)
			if err := b.WriteBundle(bundle, spec); err != nil {
				t.Fatal(err)
			}
			outR, outW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer outR.Close()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			pidFile := filepath.Join(bundle, "init.pid")
			hooks := spec.Hooks != nil
			err = b.RunGated(ctx, id, bundle, pidFile, IO{Stdout: outW, Stderr: outW}, func(ctx context.Context) error {
				if !hooks {
					if err := awaitAtGate(ctx, b, id, marker); err != nil {
						return err
					}
				} else if b.HasState(id) {
					return errors.New("with hooks the gate must run before the runtime starts")
				}
				return os.WriteFile(made, []byte("ready\n"), 0o644)
			})
			outW.Close()
			if err != nil {
				t.Fatalf("RunGated: %v", err)
			}
			out := make([]byte, 64)
			n, _ := outR.Read(out)
			if string(out[:n]) != "ready\n" {
				t.Errorf("stdout %q, want what the gate wrote", out[:n])
			}
		})
	}
}
