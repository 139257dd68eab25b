package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestToHTTP holds the error class -> HTTP status mapping to the statuses
// the Docker Engine API answers with.
func TestToHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 200},
		{"not found", NotFound("No such container: x"), 404},
		{"conflict", Conflict("container is running"), 409},
		{"invalid argument", InvalidArgument("invalid name"), 400},
		{"unavailable", Unavailable("store is busy"), 503},
		{"not modified", NotModified("container already started"), 304},
		{"forbidden", Forbidden("needs root"), 403},
		{"not implemented", NotImplemented("no registry"), 501},
		{"data loss", DataLoss("record is corrupt"), 500},
		{"unclassed", errors.New("boom"), 500},
		{"context canceled", context.Canceled, 500},
		{"wrapped not found", fmt.Errorf("start: %w", NotFound("No such image: busybox")), 404},
		{"wrapped twice conflict", fmt.Errorf("a: %w", fmt.Errorf("b: %w", Conflict("in use"))), 409},
		{"sentinel", ErrInvalidArgument, 400},
		{"exit status", &ExitStatus{Code: 3}, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ToHTTP(tc.err); got != tc.want {
				t.Errorf("ToHTTP(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}
