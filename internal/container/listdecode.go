package container

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/berth-dev/berth/internal/metadata"
)

// Decoding container records is most of the time of `ps -a` (500 records
// of a few KiB each). The list reads only a part of each record: decoding
// that part alone (the rest is skipped without building it: the host
// config, the environment, the command, paths, exec sessions...) halves it.

// listRecord is the part of a container record that a list reads: what
// Docker's container summary shows and what ps filters on.
type listRecord struct {
	ID         string    `json:"Id"`
	Created    time.Time `json:"Created"`
	Path       string    `json:"Path"`
	Args       []string  `json:"Args"`
	State      State     `json:"State"`
	Image      string    `json:"Image"`
	Name       string    `json:"Name"`
	HostConfig struct {
		NetworkMode string `json:"NetworkMode"`
	} `json:"HostConfig"`
	Mounts []MountInfo `json:"Mounts"`
	Config struct {
		Image        string              `json:"Image"`
		Labels       map[string]string   `json:"Labels"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	} `json:"Config"`
	NetworkSettings NetworkSettings `json:"NetworkSettings"`
	Internal        struct {
		MonitorPid    int    `json:"monitorPid"`
		MonitorStart  uint64 `json:"monitorStart"`
		RuntimeBinary string `json:"runtimeBinary"`
	} `json:"BerthInternal"`
}

// DecodeForList decodes the part of a container record that a list
// reads (see ListForSummary); every other field of the result is zero.
func DecodeForList(raw []byte) (*Container, error) {
	var r listRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	c := &Container{ID: r.ID, Created: r.Created, Path: r.Path, Args: r.Args, State: r.State, Image: r.Image,
		Name: r.Name, Mounts: r.Mounts, NetworkSettings: r.NetworkSettings}
	c.HostConfig.NetworkMode = r.HostConfig.NetworkMode
	c.Config.Image, c.Config.Labels, c.Config.ExposedPorts = r.Config.Image, r.Config.Labels, r.Config.ExposedPorts
	c.Internal.MonitorPid, c.Internal.MonitorStart, c.Internal.RuntimeBinary = r.Internal.MonitorPid, r.Internal.MonitorStart, r.Internal.RuntimeBinary
	return c, nil
}

// ListForSummary is List for a container list (ps, GET /containers/json):
// each record holds only what DecodeForList decodes.
func (s *Service) ListForSummary(ctx context.Context) ([]*Container, error) {
	var out []*Container
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketContainers, func(k string, raw []byte) error {
			c, err := DecodeForList(raw)
			if err != nil {
				return fmt.Errorf("container record %s: %w", k, err)
			}
			out = append(out, s.observe(c))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}
