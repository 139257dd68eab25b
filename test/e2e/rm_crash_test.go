package e2e

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRemoveCrashes: kill -9 of `rm -f`, of the monitor of one of the
// containers it removes, or of both, at any moment of the removal (the
// monitor takes the container down, the record goes in a commit the
// remover shares among its containers, then the files). With the remover
// alive, the removal still succeeds; otherwise what is left is a stopped
// container or nothing: the next command finds no file, mount, monitor
// or cgroup that no container explains, and rm -f removes what is left.
func TestRemoveCrashes(t *testing.T) {
	e := newEnv(t)
	victims := []string{"remover", "monitor", "both"}
	for i := range 24 {
		victim := victims[i%len(victims)]
		var ids []string
		for range 3 {
			ids = append(ids, strings.TrimSpace(e.must("run", "-d", "-v", "/anon", "busybox", "sleep", "1000")))
		}
		vols := map[string]string{}
		for _, id := range ids {
			vols[id] = strings.TrimSpace(e.must("inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", id))
		}
		mon := monitorPid(t, e, ids[1])
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		rm := e.command(ctx, append([]string{"rm", "-f", "-v"}, ids...)...)
		var stderr bytes.Buffer
		rm.Stderr = &stderr
		if err := rm.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		// From the start of the command to past the end of the removal
		// (about 20 ms here).
		time.Sleep(time.Duration(i/len(victims)*4) * time.Millisecond)
		if victim != "monitor" {
			rm.Process.Kill()
		}
		if victim != "remover" {
			syscall.Kill(mon, syscall.SIGKILL)
		}
		err := rm.Wait()
		cancel()
		if victim == "monitor" {
			if err != nil {
				t.Fatalf("round %d: rm -f with its monitor killed: %v: %s", i, err, stderr.String())
			}
			for _, id := range ids {
				if r := e.run("inspect", id); r.code == 0 {
					t.Fatalf("round %d: container %s left after rm -f: %s", i, id, r.stdout)
				}
				// The remover finishes what the monitor left: the
				// volumes, and Docker's events (kill, die, destroy),
				// once each.
				if r := e.run("volume", "inspect", vols[id]); r.code == 0 {
					t.Errorf("round %d: volume %s of %s left after rm -f -v", i, vols[id], id)
				}
				evs := strings.Fields(e.must("events", "--since", "1h", "--until", "0s", "--filter", "container="+id, "--format", "{{.Action}}"))
				// (No kill when the monitor was dead before rm saw it.)
				for _, action := range []string{"kill", "die", "destroy"} {
					if n := strings.Count(" "+strings.Join(evs, " ")+" ", " "+action+" "); n > 1 || n == 0 && action != "kill" {
						t.Errorf("round %d: events of %s: %v, want one %s", i, id, evs, action)
					}
				}
			}
		}
		// The next mutating command sweeps what the crash left: no
		// half-removed container, no files without a record. (A monitor
		// killed alone leaves a container that shows as exited and is
		// reconciled by its next transition.)
		e.must("run", "--rm", "busybox", "true")
		s := e.state(t)
		for _, id := range ids {
			if st, ok := s.status[id]; ok && st != "exited" && st != "running" {
				t.Errorf("round %d (%s killed): container %s is %s", i, victim, id, st)
			}
			if _, ok := s.status[id]; !ok && s.dirs[id] && s.monitors[id] == 0 {
				t.Errorf("round %d (%s killed): files of removed container %s left", i, victim, id)
			}
		}
		// rm -f again finishes the removal.
		if r := e.run(append([]string{"rm", "-f", "-v"}, ids...)...); r.code != 0 {
			t.Fatalf("round %d: rm -f after the crash: %s", i, r)
		}
		settled(t, e, "round "+victim)
		// rm -f -v, however it was cut, leaves no anonymous volume
		// (with both killed after the commit, the sweep removes them).
		eventually(t, 10*time.Second, "the volumes removed", func() bool {
			for _, v := range vols {
				if e.run("volume", "inspect", v).code == 0 {
					return false
				}
			}
			return true
		})
		if t.Failed() {
			break
		}
	}
	eventually(t, 10*time.Second, "nothing left", func() bool {
		s := e.state(t)
		return len(s.dirs)+len(s.monitors)+len(s.mounts)+len(s.cgroups) == 0
	})
	assertNoLeftovers(t, e)
}

// TestRemoveRunningVolumes: rm -f of running containers removes their
// anonymous volumes with -v only, as Docker; a volume another container
// uses stays.
func TestRemoveRunningVolumes(t *testing.T) {
	e := newEnv(t)
	keep := strings.TrimSpace(e.must("run", "-d", "-v", "/anon", "busybox", "sleep", "1000"))
	gone := strings.TrimSpace(e.must("run", "-d", "-v", "/anon", "busybox", "sleep", "1000"))
	shared := strings.TrimSpace(e.must("run", "-d", "-v", "/anon", "busybox", "sleep", "1000"))
	user := strings.TrimSpace(e.must("run", "-d", "--volumes-from", shared, "busybox", "sleep", "1000"))
	volOf := func(id string) string {
		return strings.TrimSpace(e.must("inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", id))
	}
	vKeep, vGone, vShared := volOf(keep), volOf(gone), volOf(shared)
	e.must("rm", "-f", keep)
	e.must("rm", "-f", "-v", gone, shared)
	vols := strings.Fields(e.must("volume", "ls", "-q"))
	for _, tc := range []struct {
		vol  string
		want bool
	}{{vKeep, true}, {vGone, false}, {vShared, true}} {
		if slices.Contains(vols, tc.vol) != tc.want {
			t.Errorf("volume %s listed: %v, want %v (volumes %v)", tc.vol, !tc.want, tc.want, vols)
		}
	}
	e.must("rm", "-f", user)
	assertNoLeftovers(t, e)
}
