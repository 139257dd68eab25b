package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRemoveRunningWithFakeRuntime: rm -f of a running container, as this
// berth asks its monitor (the remover deletes the record), and as a
// remover that says no, goes away, or is an older berth: the container is
// gone each time, files and namespace too.
func TestRemoveRunningWithFakeRuntime(t *testing.T) {
	for _, tc := range []struct {
		name string
		// remover plays the remover's side on the monitor's attach
		// socket; nil: Service.Remove.
		remover func(t *testing.T, att *Attachment)
	}{
		{name: "the remover deletes the record"},
		{name: "the remover says no", remover: func(t *testing.T, att *Attachment) {
			askRemove(t, att, removeMsg{Handover: true}, true)
			if err := att.fw.writeJSON(FrameRecordGone, false); err != nil {
				t.Fatal(err)
			}
			finalExit(t, att)
		}},
		{name: "the remover goes away", remover: func(t *testing.T, att *Attachment) {
			askRemove(t, att, removeMsg{Handover: true}, true)
		}},
		{name: "an older remover", remover: func(t *testing.T, att *Attachment) {
			askRemove(t, att, removeMsg{}, false)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFakeEnv(t)
			ctx := context.Background()
			c := e.create("", HostConfig{}, "sleep", "100")
			if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
				t.Fatal(err)
			}
			// The monitor's pid file goes with the bundle, before the
			// monitor is done: its process is what is waited for.
			pid, start := readMonitorPid(e.svc.BundleDir(c.ID) + "/monitor.pid")
			before, err := e.svc.meta.Commits(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.remover == nil {
				if err := e.svc.Remove(ctx, c.ID, RemoveOptions{Force: true}); err != nil {
					t.Fatal(err)
				}
				// One commit: the record's deletion (the monitor records
				// no exit for a container about to go).
				after, err := e.svc.meta.Commits(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if after-before != 1 {
					t.Errorf("rm -f made %d commits, want 1", after-before)
				}
			} else {
				conn, err := e.svc.dialMonitor(ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				att := newAttachment(conn, false)
				tc.remover(t, att)
				att.Close()
			}
			e.eventually("the container gone", func() bool {
				_, err := e.svc.Get(ctx, c.ID)
				return err != nil && !processAlive(pid, start)
			})
			for _, p := range []string{e.svc.BundleDir(c.ID), e.svc.StateDir(c.ID), e.svc.netnsPath(c.ID)} {
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Errorf("%s left: %v", p, err)
				}
			}
		})
	}
}

// askRemove sends rm -f's request and reads the monitor's first report:
// FrameStopped when handover is wanted, else the final exit.
func askRemove(t *testing.T, att *Attachment, msg removeMsg, stopped bool) {
	t.Helper()
	if err := att.fw.writeJSON(FrameHello, AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := att.fw.writeJSON(FrameRemove, msg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exit, err := att.Stream(ctx, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exit.Stopped != stopped || !stopped && !exit.Removed {
		t.Fatalf("the monitor reported %+v, want stopped %v", exit, stopped)
	}
}

func finalExit(t *testing.T, att *Attachment) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exit, err := att.Stream(ctx, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exit.Stopped || !exit.Removed || exit.Error != "" {
		t.Fatalf("the monitor's final report %+v, want removed", exit)
	}
}

// recordingVolumes is a VolumeStore that records the volumes removed.
type recordingVolumes struct {
	mu      sync.Mutex
	removed []string
}

func (v *recordingVolumes) Ensure(ctx context.Context, name string, anonymous bool) (string, bool, error) {
	return "", false, errors.New("recordingVolumes: no volumes here")
}

func (v *recordingVolumes) Remove(ctx context.Context, name string, force bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.removed = append(v.removed, name)
	return nil
}

// containerEvents returns the actions of the events journal for id, in
// order.
func (e *fakeEnv) containerEvents(id string) []string {
	e.t.Helper()
	raw, _ := os.ReadFile(e.svc.eventsPath())
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m Message
		if json.Unmarshal([]byte(line), &m) == nil && m.Actor.ID == id && m.Type == "container" {
			out = append(out, m.Action)
		}
	}
	return out
}

// TestRemoveWhenMonitorDies: rm -f -v of a running container whose
// monitor is killed -9 once it has reported the container stopped, at
// each step of the handover. The remover, still alive, finishes the
// removal: no record, no files, the anonymous volumes removed, and the
// events Docker emits (kill, die, destroy), each once.
func TestRemoveWhenMonitorDies(t *testing.T) {
	for _, step := range []string{"stopped", "committed"} {
		t.Run(step, func(t *testing.T) {
			e := newFakeEnv(t)
			vols := &recordingVolumes{}
			e.svc.volumes = vols
			ctx := context.Background()
			c := e.create("", HostConfig{}, "sleep", "100")
			if _, err := e.svc.update(ctx, c.ID, func(c *Container) error {
				c.Internal.AnonymousVolumes = []string{"anon-" + c.ID[:12]}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
				t.Fatal(err)
			}
			pid, start := readMonitorPid(e.svc.BundleDir(c.ID) + "/monitor.pid")
			killed := false
			e.svc.removalStep = func(s string) {
				if s != step {
					return
				}
				syscall.Kill(pid, syscall.SIGKILL)
				e.eventually("the monitor gone", func() bool { return !processAlive(pid, start) })
				killed = true
			}
			if err := e.svc.Remove(ctx, c.ID, RemoveOptions{Force: true, Volumes: true}); err != nil {
				t.Fatal(err)
			}
			if !killed {
				t.Fatalf("rm -f never reached step %q", step)
			}
			if _, err := e.svc.Get(ctx, c.ID); err == nil {
				t.Errorf("the container is still listed")
			}
			for _, p := range []string{e.svc.BundleDir(c.ID), e.svc.StateDir(c.ID), e.svc.netnsPath(c.ID)} {
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Errorf("%s left: %v", p, err)
				}
			}
			vols.mu.Lock()
			if want := []string{"anon-" + c.ID[:12]}; !slices.Equal(vols.removed, want) {
				t.Errorf("volumes removed: %v, want %v", vols.removed, want)
			}
			vols.mu.Unlock()
			if got, want := e.containerEvents(c.ID), []string{"start", "kill", "die", "destroy"}; !slices.Equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
		})
	}
}

// TestSweepLeavesRemovalToMonitor: the remover of a running container
// is killed -9 after it deleted the record, while the monitor is still
// taking the container down. A sweep by another command finds the
// remover's lock abandoned and no record; it must leave the files to the
// live monitor (not remove them under it) and keep the lock file, so
// that a later sweep still finds them should the monitor die too.
func TestSweepLeavesRemovalToMonitor(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	c := e.create("", HostConfig{}, "sleep", "100")
	if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	pid, start := readMonitorPid(e.svc.BundleDir(c.ID) + "/monitor.pid")
	conn, err := e.svc.dialMonitor(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	att := newAttachment(conn, false)
	defer att.Close()
	askRemove(t, att, removeMsg{Handover: true}, true)
	if err := e.svc.meta.Batch(ctx, deleteRecordTx(c, nil)); err != nil {
		t.Fatal(err)
	}
	// The remover's lock, left by its death.
	l, err := e.svc.openLock(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	l.release()
	if err := e.svc.sweepAll(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(e.svc.BundleDir(c.ID)); err != nil {
		t.Errorf("the sweep removed the bundle under the live monitor: %v", err)
	}
	if _, err := os.Lstat(e.svc.lockPath(c.ID)); err != nil {
		t.Errorf("the sweep dropped the lock file while the removal runs: %v", err)
	}
	if err := att.fw.writeJSON(FrameRecordGone, true); err != nil {
		t.Fatal(err)
	}
	finalExit(t, att)
	e.eventually("the monitor gone", func() bool { return !processAlive(pid, start) })
	if err := e.svc.sweepAll(ctx, ""); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{e.svc.BundleDir(c.ID), e.svc.lockPath(c.ID)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}

// TestRemoveAfterMonitorKilled: rm -f of a container whose monitor was
// killed -9 (with the remover's request on its way, or before it): the
// run's end is still told, die before destroy, as Docker does.
func TestRemoveAfterMonitorKilled(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	c := e.create("", HostConfig{}, "sleep", "100")
	if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	pid, start := readMonitorPid(e.svc.BundleDir(c.ID) + "/monitor.pid")
	syscall.Kill(pid, syscall.SIGKILL)
	e.eventually("the monitor gone", func() bool { return !processAlive(pid, start) })
	if err := e.svc.Remove(ctx, c.ID, RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if got, want := e.containerEvents(c.ID), []string{"start", "die", "destroy"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestRemoveDuringRestart: rm -f reaches the monitor of a restarting
// container while its next run is being started (after the back-off's
// last look at the request, before the run's init can be signalled).
// The new run must be killed at once, not left to run until the
// remover gives up.
func TestRemoveDuringRestart(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	ran, goOn := filepath.Join(dir, "ran"), filepath.Join(dir, "go")
	script := fmt.Sprintf("test -e %s || { touch %s; while [ ! -e %s ]; do sleep 0.01; done; exit 1; }; exec sleep 1000", ran, ran, goOn)
	c := e.create("", HostConfig{RestartPolicy: RestartPolicy{Name: "always"}}, "sh", "-c", script)
	if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(e.runroot, "fake")
	hold := filepath.Join(fake, "hold-run")
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(hold)
	if err := os.WriteFile(goOn, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.eventually("the second run held", func() bool { return fileExists(filepath.Join(fake, "held-"+c.ID)) })
	conn, err := e.svc.dialMonitor(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	att := newAttachment(conn, false)
	defer att.Close()
	for _, f := range []struct {
		kind byte
		v    any
	}{{FrameHello, AttachOptions{}}, {FrameRemove, removeMsg{Handover: true}}, {FrameExecState, execResizeMsg{}}} {
		if err := att.fw.writeJSON(f.kind, f.v); err != nil {
			t.Fatal(err)
		}
	}
	// The monitor reads a client's frames in order: its answer to the
	// last one says it has the request.
	for {
		kind, _, err := readFrame(conn, nil)
		if err != nil {
			t.Fatal(err)
		}
		if kind == FrameReady {
			break
		}
	}
	os.Remove(hold)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	exit, err := att.Stream(wctx, nil, nil, nil)
	if err != nil {
		t.Fatalf("the monitor did not take the container down: %v", err)
	}
	if !exit.Stopped {
		t.Fatalf("the monitor reported %+v, want stopped", exit)
	}
	if err := att.fw.writeJSON(FrameRecordGone, false); err != nil {
		t.Fatal(err)
	}
	finalExit(t, att)
}

// TestSweepRemovesVolumesOfCrashedRemoval: rm -f -v whose remover and
// monitor are both killed -9 once the record is deleted: the next sweep
// finds the files without a record and removes, with them, the anonymous
// volumes that the removal was to remove, which no record names any more.
func TestSweepRemovesVolumesOfCrashedRemoval(t *testing.T) {
	e := newFakeEnv(t)
	vols := &recordingVolumes{}
	e.svc.volumes = vols
	ctx := context.Background()
	c := e.create("", HostConfig{}, "sleep", "100")
	c, err := e.svc.update(ctx, c.ID, func(c *Container) error {
		c.Internal.AnonymousVolumes = []string{"anon-" + c.ID[:12]}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	pid, start := readMonitorPid(e.svc.BundleDir(c.ID) + "/monitor.pid")
	conn, err := e.svc.dialMonitor(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	att := newAttachment(conn, false)
	defer att.Close()
	askRemove(t, att, removeMsg{Handover: true, Volumes: true}, true)
	syscall.Kill(pid, syscall.SIGKILL)
	e.eventually("the monitor gone", func() bool { return !processAlive(pid, start) })
	if err := e.svc.meta.Batch(ctx, deleteRecordTx(c, nil)); err != nil {
		t.Fatal(err)
	}
	// The remover dies too: its lock stays without a holder.
	l, err := e.svc.openLock(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	l.release()
	if err := e.svc.sweepAll(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(e.svc.BundleDir(c.ID)); !os.IsNotExist(err) {
		t.Errorf("bundle left: %v", err)
	}
	vols.mu.Lock()
	defer vols.mu.Unlock()
	if want := []string{"anon-" + c.ID[:12]}; !slices.Equal(vols.removed, want) {
		t.Errorf("volumes removed: %v, want %v", vols.removed, want)
	}
}

// TestRemoverLateCommitNoSecondDie: the monitor deleted the record
// itself (it gave up waiting for a remover stuck on the store's lock, or
// was told no) and emitted die; the remover's late commit deletes
// nothing and must not emit a second die.
func TestRemoverLateCommitNoSecondDie(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	c := e.create("", HostConfig{}, "sleep", "100")
	if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	conn, err := e.svc.dialMonitor(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	att := newAttachment(conn, false)
	defer att.Close()
	askRemove(t, att, removeMsg{Handover: true}, true)
	if err := att.fw.writeJSON(FrameRecordGone, false); err != nil {
		t.Fatal(err)
	}
	e.eventually("the monitor deleted the record", func() bool {
		_, err := e.svc.Get(ctx, c.ID)
		return err != nil
	})
	exit, err := e.svc.deleteForMonitor(ctx, att, c, &ExitMsg{ExitCode: 137})
	if err != nil {
		t.Fatal(err)
	}
	if !exit.Removed {
		t.Errorf("final report %+v, want removed", exit)
	}
	if got, want := e.containerEvents(c.ID), []string{"start", "die", "destroy"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestRemoveKeepsLockWhenFilesStay: the monitor deletes the record but
// cannot remove the files (here a mount in the writable layer); rm -f
// reports it, and the files stay marked by the lock file, so that a
// sweep removes them once they can go, instead of being left to nothing.
func TestRemoveKeepsLockWhenFilesStay(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	c := e.create("", HostConfig{}, "sleep", "100")
	if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	stuck := filepath.Join(e.svc.snaps.ContainerDir(c.ID), "stuck")
	if err := os.MkdirAll(stuck, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", stuck, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(stuck, unix.MNT_DETACH)
	if err := e.svc.Remove(ctx, c.ID, RemoveOptions{Force: true}); err == nil {
		t.Errorf("rm -f succeeded with the layer left")
	}
	if _, err := e.svc.Get(ctx, c.ID); err == nil {
		t.Fatalf("the record is still there")
	}
	if _, err := os.Lstat(e.svc.lockPath(c.ID)); err != nil {
		t.Errorf("no lock file marks the files left: %v", err)
	}
	if err := unix.Unmount(stuck, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.sweepAll(ctx, ""); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{e.svc.snaps.ContainerDir(c.ID), e.svc.BundleDir(c.ID), e.svc.lockPath(c.ID)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}
