package container

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// A lookup that concurrent renames keep spoiling (the kernel answers
// EAGAIN) gives up after a bound, with an error that says what happened
// and to retry, instead of a bare "resource temporarily unavailable".
func TestOpenInGivesUpClearly(t *testing.T) {
	calls := 0
	spoiled := func(int, string, *unix.OpenHow) (int, error) {
		calls++
		return -1, unix.EAGAIN
	}
	_, err := openInWith(spoiled, -1, "/d/link", true)
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "/d/link") ||
		!strings.Contains(err.Error(), "kept changing") || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("want a clear conflict, got %v", err)
	}
	if calls != openInRetries {
		t.Fatalf("%d lookups, want %d", calls, openInRetries)
	}
}
