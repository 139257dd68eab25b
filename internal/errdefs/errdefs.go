// Package errdefs defines the error classes shared by every berth package.
// Packages wrap one of the sentinel classes with %w; the front ends translate
// an error into an exit code or HTTP status once, at the edge.
package errdefs

import (
	"errors"
	"fmt"
)

// Error classes. Compare with errors.Is.
var (
	ErrNotFound        = errors.New("not found")
	ErrConflict        = errors.New("conflict")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrUnavailable     = errors.New("unavailable")
	ErrNotModified     = errors.New("not modified")
	ErrForbidden       = errors.New("forbidden")
	ErrNotImplemented  = errors.New("not implemented")
	// ErrDataLoss: berth's own state is damaged (a corrupted database).
	ErrDataLoss = errors.New("data loss")
)

type classed struct {
	class error
	msg   string
	cause error
}

func (e *classed) Error() string { return e.msg }

func (e *classed) Is(target error) bool { return target == e.class }

func (e *classed) Unwrap() error { return e.cause }

func newf(class error, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &classed{class: class, msg: err.Error(), cause: errors.Unwrap(err)}
}

// NotFound returns an error of class ErrNotFound with a formatted message;
// %w in format keeps the cause reachable.
func NotFound(format string, args ...any) error { return newf(ErrNotFound, format, args...) }

// Conflict returns an error of class ErrConflict.
func Conflict(format string, args ...any) error { return newf(ErrConflict, format, args...) }

// InvalidArgument returns an error of class ErrInvalidArgument.
func InvalidArgument(format string, args ...any) error {
	return newf(ErrInvalidArgument, format, args...)
}

// Unavailable returns an error of class ErrUnavailable.
func Unavailable(format string, args ...any) error { return newf(ErrUnavailable, format, args...) }

// NotModified returns an error of class ErrNotModified.
func NotModified(format string, args ...any) error { return newf(ErrNotModified, format, args...) }

// Forbidden returns an error of class ErrForbidden.
func Forbidden(format string, args ...any) error { return newf(ErrForbidden, format, args...) }

// NotImplemented returns an error of class ErrNotImplemented.
func NotImplemented(format string, args ...any) error {
	return newf(ErrNotImplemented, format, args...)
}

// DataLoss returns an error of class ErrDataLoss.
func DataLoss(format string, args ...any) error { return newf(ErrDataLoss, format, args...) }

// IsDataLoss reports whether err is of class ErrDataLoss.
func IsDataLoss(err error) bool { return errors.Is(err, ErrDataLoss) }

// IsNotFound reports whether err is of class ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether err is of class ErrConflict.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsInvalidArgument reports whether err is of class ErrInvalidArgument.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// ExitStatus carries a process exit status through the error path: the
// status of a container the CLI ran in the foreground, or 126/127 when its
// command could not be started. It is not a failure of berth itself.
type ExitStatus struct {
	Code int
	// Msg, when set, is printed on stderr by the CLI before exiting.
	Msg string
}

func (e *ExitStatus) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Exit codes used by docker's CLI.
const (
	ExitFailure       = 1   // any failed command but run/create
	ExitTemplate      = 64  // a --format template that does not parse (inspect, version, info, events)
	ExitEngine        = 125 // run/create failed in the engine, or a flag was wrong
	ExitCannotInvoke  = 126 // the command exists but cannot be run
	ExitCommandAbsent = 127 // the command was not found
)

// ExitCode maps err to the exit code docker's CLI uses for a failed
// command other than run and create: the status an error carries (a
// container's, or a CLI failure's), else 1. The CLI's edge adds what
// depends on the command (run and create, see internal/cli).
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var st *ExitStatus
	if errors.As(err, &st) {
		return st.Code
	}
	return ExitFailure
}

// ToHTTP maps err to the HTTP status the Docker Engine API uses for it.
// The codes are literal numbers: importing net/http here would add its
// (and crypto/tls's) initialisation to the start-up of every berth process.
func ToHTTP(err error) int {
	switch {
	case err == nil:
		return 200
	case errors.Is(err, ErrNotFound):
		return 404
	case errors.Is(err, ErrConflict):
		return 409
	case errors.Is(err, ErrInvalidArgument):
		return 400
	case errors.Is(err, ErrNotModified):
		return 304
	case errors.Is(err, ErrForbidden):
		return 403
	case errors.Is(err, ErrUnavailable):
		return 503
	case errors.Is(err, ErrNotImplemented):
		return 501
	}
	return 500
}
