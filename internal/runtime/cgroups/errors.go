package cgroups

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// FileError is a failed access to one cgroup control file. It names the
// file and the value, which is what someone fixing a rejected limit needs.
type FileError struct {
	Op    string // "write" or "read"
	Path  string
	Value string // what was written; "" for reads
	Err   error
}

func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString("cgroups: ")
	b.WriteString(e.Op)
	if e.Op == "write" {
		fmt.Fprintf(&b, " %q to", e.Value)
	}
	b.WriteString(" " + e.Path + ": ")
	b.WriteString(e.Err.Error())
	if errors.Is(e.Err, unix.ENOENT) {
		// A control file is missing when its controller is not mounted
		// or enabled, or the kernel lacks the feature.
		b.WriteString(" (the kernel does not provide this control file here)")
	}
	return b.String()
}

func (e *FileError) Unwrap() error { return e.Err }

// classify gives a low-level error berth's error class, keeping it
// reachable with errors.As and errors.Is.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ERANGE), errors.Is(err, unix.EOVERFLOW):
		return errdefs.InvalidArgument("%w", err)
	case errors.Is(err, unix.ENOENT):
		return errdefs.NotImplemented("%w", err)
	case errors.Is(err, unix.EBUSY):
		return errdefs.Conflict("%w", err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return errdefs.Forbidden("%w", err)
	case errors.Is(err, unix.ESRCH):
		return errdefs.NotFound("%w", err)
	}
	return err
}

// writeFile writes value to the control file path in a single write(2),
// as the kernel parses each write on its own.
func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return &FileError{Op: "write", Path: path, Value: value, Err: unwrapPathError(err)}
	}
	return nil
}

// readFile returns the content of a control file without its trailing
// newline.
func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &FileError{Op: "read", Path: path, Err: unwrapPathError(err)}
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// unwrapPathError drops os.PathError's own copy of the path, which
// FileError already carries.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
