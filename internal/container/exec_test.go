package container

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestExecSessionBookkeeping(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	code := 3
	mk := func(id string, created int, started, running bool, ended int) *ExecSession {
		e := &ExecSession{ID: id, Created: t0.Add(time.Duration(created) * time.Second), Started: started, Running: running}
		if started && !running {
			e.ExitCode, e.Ended = &code, t0.Add(time.Duration(ended)*time.Second)
		}
		return e
	}
	execs := map[string]*ExecSession{
		"created":  mk("created", 5, false, false, 0),
		"running":  mk("running", 1, true, true, 0),
		"ended-1":  mk("ended-1", 0, true, false, 10),
		"ended-2":  mk("ended-2", 0, true, false, 20),
		"ended-3":  mk("ended-3", 0, true, false, 30),
		"ended-b4": mk("ended-b4", 0, true, false, 5),
	}

	if got, want := liveExecIDs(execs), []string{"running", "created"}; !slices.Equal(got, want) {
		t.Errorf("liveExecIDs = %v, want %v (created or running, oldest first)", got, want)
	}

	pruneEndedExecs(execs, 2)
	for _, id := range []string{"ended-1", "ended-b4"} {
		if _, ok := execs[id]; ok {
			t.Errorf("prune kept %s, one of the oldest finished sessions", id)
		}
	}
	for _, id := range []string{"created", "running", "ended-2", "ended-3"} {
		if _, ok := execs[id]; !ok {
			t.Errorf("prune dropped %s", id)
		}
	}

	c := &Container{ExecIDs: []string{"running", "created"}, Internal: Internal{Execs: execs}}
	endExecs(c)
	if c.ExecIDs != nil {
		t.Errorf("ExecIDs after the container's exit: %v", c.ExecIDs)
	}
	if e := c.Internal.Execs["running"]; e.Running || !e.Started || e.ExitCode == nil || *e.ExitCode != 137 {
		t.Errorf("a running session after the container's exit: %+v", e)
	}
	if _, ok := c.Internal.Execs["created"]; ok {
		t.Error("a session never started outlived its container's run")
	}
	if e := c.Internal.Execs["ended-3"]; *e.ExitCode != 3 {
		t.Errorf("a finished session's exit code changed to %d", *e.ExitCode)
	}
}

func TestExecPruneKeepsBound(t *testing.T) {
	execs := map[string]*ExecSession{}
	code := 0
	for i := 0; i < 3*maxEndedExecs; i++ {
		pruneEndedExecs(execs, maxEndedExecs-1)
		id := strconv.Itoa(i)
		execs[id] = &ExecSession{ID: id, Started: true, ExitCode: &code, Ended: time.Unix(int64(i), 0)}
	}
	if len(execs) != maxEndedExecs {
		t.Fatalf("%d sessions kept, want %d", len(execs), maxEndedExecs)
	}
	if _, ok := execs[strconv.Itoa(3*maxEndedExecs-1)]; !ok {
		t.Fatal("the newest session was dropped")
	}
}

// TestExecReadyErrors: an error the monitor reports keeps its class (and
// so its exit code and HTTP status) on the caller's side.
func TestExecReadyErrors(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"conflict", errdefs.Conflict("Container x is not running"), errdefs.IsConflict},
		{"not found", errNoSuchExec("abc"), errdefs.IsNotFound},
		{"invalid", errdefs.InvalidArgument("bad"), errdefs.IsInvalidArgument},
		{"exit status", &errdefs.ExitStatus{Code: 127, Msg: "not found"}, func(err error) bool {
			var st *errdefs.ExitStatus
			return errors.As(err, &st) && st.Code == 127
		}},
		{"plain", errors.New("boom"), func(err error) bool { return !errdefs.IsConflict(err) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := execReadyMsg{Error: tc.err.Error(), Class: errClass(tc.err)}
			var st *errdefs.ExitStatus
			if errors.As(tc.err, &st) {
				r.ExitCode = st.Code
			}
			got := r.err()
			if got.Error() != tc.err.Error() || !tc.check(got) {
				t.Fatalf("round trip of %v gave %v", tc.err, got)
			}
		})
	}
}
