package engine

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/filters"
	"github.com/berth-dev/berth/internal/volume"
)

// ContainerPruneReport is POST /containers/prune's answer.
type ContainerPruneReport struct {
	ContainersDeleted []string
	SpaceReclaimed    uint64
}

// ImageDeleteResponseItem is one line of an image removal: a reference
// untagged or an image or layer deleted.
type ImageDeleteResponseItem struct {
	Untagged string `json:",omitempty"`
	Deleted  string `json:",omitempty"`
}

// ImagePruneReport is POST /images/prune's answer.
type ImagePruneReport struct {
	ImagesDeleted  []ImageDeleteResponseItem
	SpaceReclaimed uint64
}

// VolumePruneReport is POST /volumes/prune's answer.
type VolumePruneReport struct {
	VolumesDeleted []string
	SpaceReclaimed uint64
}

// untilOf reads the `until` filter: only objects created before it are
// pruned. Zero when not given.
func untilOf(f filters.Args) (time.Time, error) {
	var until time.Time
	vals := f.Get("until")
	if len(vals) > 1 {
		return until, errdefs.InvalidArgument("more than one until filter specified")
	}
	for _, v := range vals {
		t, err := filters.ParseTime(v, time.Now())
		if err != nil {
			return until, err
		}
		until = t
	}
	return until, nil
}

// PruneContainers is `docker container prune`: every container that is
// not running, created before `until`, whose labels pass `label` and
// `label!`.
func (e *Engine) PruneContainers(ctx context.Context, f filters.Args) (*ContainerPruneReport, error) {
	if err := f.Validate("label", "label!", "until"); err != nil {
		return nil, err
	}
	until, err := untilOf(f)
	if err != nil {
		return nil, err
	}
	// What crashed commands left goes first (prune is where users look).
	if err := e.Containers.Sweep(ctx); err != nil {
		return nil, err
	}
	if err := e.sweepNetworks(ctx); err != nil {
		return nil, err
	}
	ctrs, err := e.Containers.List(ctx)
	if err != nil {
		return nil, err
	}
	rep := &ContainerPruneReport{}
	for _, c := range ctrs {
		if c.State.Running || c.State.Paused || c.State.Restarting || c.State.Status == "removing" {
			continue
		}
		if !until.IsZero() && c.Created.After(until) || !f.MatchLabels(c.Config.Labels) {
			continue
		}
		size := volume.DirSize(e.Snapshots.UpperDir(c.ID))
		if err := e.Containers.Remove(ctx, c.ID, container.RemoveOptions{}); err != nil {
			if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
				continue // gone, started or being removed meanwhile
			}
			return rep, err
		}
		rep.ContainersDeleted = append(rep.ContainersDeleted, c.ID)
		rep.SpaceReclaimed += uint64(size)
	}
	e.Emit(ctx, pruneEvent("container", rep.SpaceReclaimed))
	return rep, nil
}

func pruneEvent(kind string, reclaimed uint64) container.Event {
	return container.Event{Type: kind, Action: "prune", Attributes: map[string]string{"reclaimed": strconv.FormatUint(reclaimed, 10)}}
}

// PruneImages is `docker image prune`: dangling images (all unused ones
// with dangling=false) that no container uses, created before `until`,
// whose labels pass `label` and `label!`. The space reclaimed is that of
// the layers actually deleted: a layer another image still has is not
// counted, as in Docker.
func (e *Engine) PruneImages(ctx context.Context, f filters.Args) (*ImagePruneReport, error) {
	if err := f.Validate("dangling", "label", "label!", "until"); err != nil {
		return nil, err
	}
	danglingOnly, err := f.GetBoolOrDefault("dangling", true)
	if err != nil {
		return nil, err
	}
	until, err := untilOf(f)
	if err != nil {
		return nil, err
	}
	imgs, err := e.Images.List(ctx)
	if err != nil {
		return nil, err
	}
	ctrs, err := e.Containers.List(ctx)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, c := range ctrs {
		used[c.Image] = true
	}
	parents := map[string]bool{}
	layersBefore := map[string]int64{}
	for _, img := range imgs {
		if img.Parent != "" {
			parents[img.Parent.String()] = true
		}
		for _, l := range img.Layers {
			layersBefore[l.ChainID.String()] = l.Size
		}
	}
	rep := &ImagePruneReport{}
	for _, img := range imgs {
		id := img.ID.String()
		if used[id] || danglingOnly && (len(img.RepoTags) > 0 || parents[id]) {
			continue
		}
		if !until.IsZero() && img.Created.After(until) {
			continue
		}
		if f.Contains("label") || f.Contains("label!") {
			var labels map[string]string
			if cfg, err := e.Images.Config(img.ID); err == nil {
				labels = cfg.Config.Labels
			}
			if !f.MatchLabels(labels) {
				continue
			}
		}
		// Forced only past the tags: a container made meanwhile keeps
		// the image (Remove then only untags it).
		res, err := e.removeImage(ctx, id, true)
		if err != nil {
			if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
				continue
			}
			return rep, err
		}
		for _, u := range res.Untagged {
			rep.ImagesDeleted = append(rep.ImagesDeleted, ImageDeleteResponseItem{Untagged: u})
		}
		for _, d := range res.Deleted {
			rep.ImagesDeleted = append(rep.ImagesDeleted, ImageDeleteResponseItem{Deleted: d})
		}
	}
	if len(rep.ImagesDeleted) > 0 {
		freed, err := e.freedLayers(ctx, layersBefore)
		if err != nil {
			return rep, err
		}
		for _, l := range freed {
			rep.ImagesDeleted = append(rep.ImagesDeleted, ImageDeleteResponseItem{Deleted: l.chainID})
			rep.SpaceReclaimed += uint64(l.size)
		}
	}
	e.Emit(ctx, pruneEvent("image", rep.SpaceReclaimed))
	return rep, nil
}

type freedLayer struct {
	chainID string
	size    int64
}

// freedLayers lists the layers of before that no image has any more.
func (e *Engine) freedLayers(ctx context.Context, before map[string]int64) ([]freedLayer, error) {
	imgs, err := e.Images.List(ctx)
	if err != nil {
		return nil, err
	}
	still := map[string]bool{}
	for _, img := range imgs {
		for _, l := range img.Layers {
			still[l.ChainID.String()] = true
		}
	}
	var out []freedLayer
	for ch, size := range before {
		if !still[ch] {
			out = append(out, freedLayer{ch, size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].chainID < out[j].chainID })
	return out, nil
}

// PruneVolumes is `docker volume prune`: unused anonymous volumes (all
// unused ones with all=true) whose labels pass `label` and `label!`.
func (e *Engine) PruneVolumes(ctx context.Context, f filters.Args) (*VolumePruneReport, error) {
	if err := f.Validate("label", "label!", "all"); err != nil {
		return nil, err
	}
	all, err := f.GetBoolOrDefault("all", false)
	if err != nil {
		return nil, err
	}
	removed, reclaimed, err := e.Volumes.Prune(ctx, all, f.MatchLabels)
	rep := &VolumePruneReport{VolumesDeleted: removed, SpaceReclaimed: uint64(reclaimed)}
	for _, n := range removed {
		e.Emit(ctx, volumeEvent("destroy", n))
	}
	if err != nil {
		return rep, err
	}
	e.Emit(ctx, pruneEvent("volume", rep.SpaceReclaimed))
	return rep, nil
}

// SystemPruneRequest is `docker system prune`.
type SystemPruneRequest struct {
	All     bool // images without a container, not only dangling ones
	Volumes bool // anonymous volumes too
	Filters filters.Args
}

// SystemPruneReport gathers the reports of each kind pruned.
type SystemPruneReport struct {
	Containers *ContainerPruneReport
	Networks   *NetworkPruneReport
	Volumes    *VolumePruneReport // nil unless asked
	Images     *ImagePruneReport
}

// SpaceReclaimed is the total of every kind.
func (r *SystemPruneReport) SpaceReclaimed() uint64 {
	var n uint64
	if r.Containers != nil {
		n += r.Containers.SpaceReclaimed
	}
	if r.Volumes != nil {
		n += r.Volumes.SpaceReclaimed
	}
	if r.Images != nil {
		n += r.Images.SpaceReclaimed
	}
	return n
}

// PruneSystem prunes containers, then volumes (if asked), then images,
// as Docker's CLI does, each with the same filters. Only the filters all
// of them take (label, label!, until) are accepted, and they are checked
// before anything is removed; until does not go with volumes, whose
// records have no creation time to judge by (Docker refuses it too).
func (e *Engine) PruneSystem(ctx context.Context, req SystemPruneRequest) (*SystemPruneReport, error) {
	f := req.Filters
	if err := f.Validate("label", "label!", "until"); err != nil {
		return nil, err
	}
	if req.Volumes && f.Contains("until") {
		return nil, errdefs.InvalidArgument(`The "until" filter is not supported with "--volumes"`)
	}
	if _, err := untilOf(f); err != nil {
		return nil, err
	}
	rep := &SystemPruneReport{}
	var err error
	if rep.Containers, err = e.PruneContainers(ctx, f); err != nil {
		return rep, err
	}
	if rep.Networks, err = e.NetworksPrune(ctx, f); err != nil {
		return rep, err
	}
	if req.Volumes {
		if rep.Volumes, err = e.PruneVolumes(ctx, f); err != nil {
			return rep, err
		}
	}
	imgFilters := f.Clone()
	if req.All {
		imgFilters.Add("dangling", "false")
	}
	rep.Images, err = e.PruneImages(ctx, imgFilters)
	return rep, err
}
