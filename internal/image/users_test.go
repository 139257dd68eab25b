package image

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/metadata"
)

// noUsers: no container uses any image.
type noUsers struct{}

func (noUsers) ImageUsersTx(*metadata.Tx, string) []ContainerUse { return nil }

// fakeUsers stands for the container package: image ID -> its containers.
type fakeUsers map[string][]ContainerUse

func (u fakeUsers) ImageUsersTx(_ *metadata.Tx, id string) []ContainerUse { return u[id] }

// TestRemoveAsksUsers: rmi's conflicts come from the Users the store was
// given, not from reading container records itself.
func TestRemoveAsksUsers(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	layer := makeTar(t, tarFile{name: "f", data: "x"})
	running := makeImage(t, s, "running:1", "a", layer)
	stopped := makeImage(t, s, "stopped:1", "b", makeTar(t, tarFile{name: "g", data: "y"}))
	s.users = fakeUsers{
		running.ID.String(): {{ID: "0123456789abcdef", Running: true}},
		stopped.ID.String(): {{ID: "fedcba9876543210"}},
	}
	for _, tc := range []struct {
		name, ref string
		force     bool
		want      string
	}{
		{"untag last tag of a used image", "running:1", false, "must force) - container 0123456789ab is using"},
		{"delete by ID, running user", running.ID.String(), true, "cannot be forced) - image is being used by running container 0123456789ab"},
		{"delete by ID, stopped user", stopped.ID.String(), false, "must be forced) - image is being used by stopped container fedcba987654"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Remove(ctx, tc.ref, tc.force)
			if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Remove(%s, force=%v) = %v, want a conflict with %q", tc.ref, tc.force, err, tc.want)
			}
		})
	}
	// Forced, a stopped user keeps the image, untagged.
	res, err := s.Remove(ctx, stopped.ID.String(), true)
	if err != nil || len(res.Deleted) != 0 || len(res.Untagged) != 1 {
		t.Fatalf("forced removal with a stopped user: %+v, %v", res, err)
	}
	// Without users it goes.
	s.users = noUsers{}
	if res, err := s.Remove(ctx, running.ID.String(), true); err != nil || len(res.Deleted) != 1 {
		t.Fatalf("removal without users: %+v, %v", res, err)
	}
}
