// Package rootclean finds and removes what a test's berth root left in
// the host's kernel, the socket redirect's programs included: testutil
// cannot see those (the dataplane's own tests import testutil, so it
// cannot import the dataplane).
package rootclean

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/internal/network/dataplane"
	"github.com/berth-dev/berth/internal/testutil"
)

// Left lists what the dataplane of the berth root at root has in the
// kernel: testutil.DataplaneLeft's bridges, tables, rules in Docker's
// DOCKER-USER chain and lock files, and its socket redirect programs
// attached to the cgroup2 root.
func Left(root string) []string {
	table := testutil.RootTable(root)
	left := testutil.DataplaneLeft(table)
	n, err := dataplane.New(dataplane.WithTable(table)).SocketRedirectPrograms()
	switch {
	case err != nil:
		left = append(left, fmt.Sprintf("socket redirect programs: %v", err))
	case n > 0:
		left = append(left, fmt.Sprintf("%d socket redirect programs", n))
	}
	return left
}

// Remove removes what Left lists (best effort), as a reboot would.
func Remove(root string) {
	table := testutil.RootTable(root)
	dataplane.New(dataplane.WithTable(table)).RemoveSocketRedirect(context.Background())
	testutil.RemoveDataplane(table) // after: the redirect's lock file goes too
}

// SweepStale detaches the socket redirect programs, and deletes the rules
// in Docker's DOCKER-USER chain, of roots whose table is gone
// (testutil.SweepDir removes tables, not these).
func SweepStale() error {
	return errors.Join(dataplane.New().SweepStaleRedirects(), dataplane.SweepStaleDockerUserRules())
}
