package network

import (
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestRootTableAsTestutil: the test helpers find a test root's bridges and
// table by the name berth gives them.
func TestRootTableAsTestutil(t *testing.T) {
	for _, root := range []string{"/tmp/e2e-suite-1-2/env-3/root", "/var/lib/berth-second"} {
		if got, want := testutil.RootTable(root), DataplaneTable(root); got != want {
			t.Errorf("testutil.RootTable(%q) = %q, berth uses %q", root, got, want)
		}
	}
}
