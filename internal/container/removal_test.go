package container

import (
	"context"
	"os"
	"testing"
	"time"
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
				return err != nil && !e.monitorRuns(c.ID)
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

// monitorRuns tells whether the monitor of id still runs.
func (e *fakeEnv) monitorRuns(id string) bool {
	pid, start := readMonitorPid(e.svc.BundleDir(id) + "/monitor.pid")
	return pid != 0 && processAlive(pid, start)
}
