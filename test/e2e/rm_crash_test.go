package e2e

import (
	"bytes"
	"context"
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
			ids = append(ids, strings.TrimSpace(e.must("run", "-d", "busybox", "sleep", "1000")))
		}
		mon := monitorPid(t, e, ids[1])
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		rm := e.command(ctx, append([]string{"rm", "-f"}, ids...)...)
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
		if r := e.run(append([]string{"rm", "-f"}, ids...)...); r.code != 0 {
			t.Fatalf("round %d: rm -f after the crash: %s", i, r)
		}
		settled(t, e, "round "+victim)
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
