package container

import (
	"context"
	"errors"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

// cannotInvoke is an exec start that failed once the session was to run
// (its user not found, its working directory missing, the runtime
// refusing it): docker records such a session as exited with 126 and its
// CLI exits 126. An error that already carries 126/127 keeps its code.
func cannotInvoke(err error) *errdefs.ExitStatus {
	var st *errdefs.ExitStatus
	if errors.As(err, &st) {
		return st
	}
	return &errdefs.ExitStatus{Code: errdefs.ExitCannotInvoke, Msg: err.Error()}
}

// execStartFailed records session id of container cid as failed to start
// (unless some other start got it first) and returns err as its exit
// status.
func (s *Service) execStartFailed(ctx context.Context, cid, id string, err error) error {
	st := cannotInvoke(err)
	s.update(context.WithoutCancel(ctx), cid, func(c *Container) error {
		if e := c.Internal.Execs[id]; e != nil && !e.Started {
			code := st.Code
			e.Started, e.Running = true, false
			e.ExitCode, e.Error, e.Ended = &code, st.Msg, time.Now().UTC()
			c.ExecIDs = liveExecIDs(c.Internal.Execs)
		}
		return nil
	})
	return st
}

// userError is an exec's user that cannot be resolved in the container.
type userError struct{ err error }

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }
