package container

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/metadata"
)

// TestUsers: the answers the image and volume stores get about container
// records, read inside their transaction.
func TestUsers(t *testing.T) {
	ctx := context.Background()
	meta, err := metadata.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const img = "sha256:aaaa"
	recs := map[string]*Container{
		"c-running": {ID: "c-running", Image: img, State: State{Running: true}},
		"c-paused":  {ID: "c-paused", Image: img, State: State{Running: true, Paused: true}},
		"c-stopped": {ID: "c-stopped", Image: img, Mounts: []MountInfo{{Type: "volume", Name: "data"}}},
		"c-other":   {ID: "c-other", Image: "sha256:bbbb", Mounts: []MountInfo{{Type: "bind", Name: "data"}}},
	}
	err = meta.Update(ctx, func(tx *metadata.Tx) error {
		for id, c := range recs {
			if err := tx.Put(metadata.BucketContainers, id, c); err != nil {
				return err
			}
		}
		// A record this version cannot fully decode still names its image.
		return tx.PutRaw(metadata.BucketContainers, "c-odd", []byte(`{"Id":"c-odd","Image":"sha256:aaaa","Created":"not a time"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	var images []image.ContainerUse
	var vols, none []string
	meta.View(ctx, func(tx *metadata.Tx) error {
		images = Users{}.ImageUsersTx(tx, img)
		vols = Users{}.VolumeUsersTx(tx, "data")
		none = Users{}.VolumeUsersTx(tx, "nosuch")
		return nil
	})
	slices.SortFunc(images, func(a, b image.ContainerUse) int { return strings.Compare(a.ID, b.ID) })
	want := []image.ContainerUse{{ID: "c-odd"}, {ID: "c-paused", Running: true}, {ID: "c-running", Running: true}, {ID: "c-stopped"}}
	if !slices.Equal(images, want) {
		t.Errorf("ImageUsersTx = %+v, want %+v", images, want)
	}
	if !slices.Equal(vols, []string{"c-stopped"}) || len(none) != 0 {
		t.Errorf("VolumeUsersTx = %v (and %v for an unused volume), want [c-stopped]", vols, none)
	}
}
