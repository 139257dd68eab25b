package container

import (
	"encoding/json"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/metadata"
)

// Users answers the image and volume stores' "which containers use X"
// (image.Users, volume.Users) from the container records, which only
// this package reads. It answers inside the caller's transaction, so the
// answer holds until the caller's removal commits. It holds no state: the
// stores are made before the container service, which needs them.
type Users struct{}

var _ image.Users = Users{}

// ImageUsersTx lists the containers made from image imageID; a running
// or paused one is Running (rmi cannot force those away).
func (Users) ImageUsersTx(tx *metadata.Tx, imageID string) []image.ContainerUse {
	var out []image.ContainerUse
	tx.ForEach(metadata.BucketContainers, func(_ string, raw []byte) error {
		// Only the fields needed: a record this version cannot fully
		// decode still counts as a user.
		var c struct {
			ID    string `json:"Id"`
			Image string `json:"Image"`
			State struct {
				Running bool `json:"Running"`
				Paused  bool `json:"Paused"`
			} `json:"State"`
		}
		if json.Unmarshal(raw, &c) == nil && c.Image == imageID {
			out = append(out, image.ContainerUse{ID: c.ID, Running: c.State.Running || c.State.Paused})
		}
		return nil
	})
	return out
}

// VolumeUsersTx lists the IDs of the containers that mount volume name.
func (Users) VolumeUsersTx(tx *metadata.Tx, name string) []string {
	var ids []string
	tx.ForEach(metadata.BucketContainers, func(id string, raw []byte) error {
		var c struct {
			Mounts []struct{ Type, Name string }
		}
		if json.Unmarshal(raw, &c) == nil {
			for _, m := range c.Mounts {
				if m.Type == "volume" && m.Name == name {
					ids = append(ids, id)
				}
			}
		}
		return nil
	})
	return ids
}
