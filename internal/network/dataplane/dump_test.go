package dataplane

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestDumpRetriesInterrupted: a dump the kernel interrupted is read again
// (the link table changes while containers start); other errors and a
// dump interrupted every time come back as they are.
func TestDumpRetriesInterrupted(t *testing.T) {
	other := errors.New("boom")
	for _, tc := range []struct {
		name        string
		interrupted int // reads that come back interrupted first
		final       error
		wantErr     error
		wantReads   int
	}{
		{"clean", 0, nil, nil, 1},
		{"interrupted twice", 2, nil, nil, 3},
		{"other error", 0, other, other, 1},
		{"always interrupted", dumpRetries, nil, netlink.ErrDumpInterrupted, dumpRetries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads := 0
			got, err := dump(func() ([]string, error) {
				reads++
				if reads <= tc.interrupted {
					return []string{"partial"}, fmt.Errorf("listing links: %w", netlink.ErrDumpInterrupted)
				}
				return []string{"whole"}, tc.final
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if reads != tc.wantReads {
				t.Errorf("%d reads, want %d", reads, tc.wantReads)
			}
			if err == nil && got[0] != "whole" {
				t.Errorf("result %v", got)
			}
		})
	}
}
