package engine

import (
	"context"
	"time"

	"github.com/berth-dev/berth/internal/filters"
	"github.com/berth-dev/berth/internal/volume"
)

// DiskUsage is GET /system/df: every image, container and volume with its
// size, and the totals `docker system df` prints.
type DiskUsage struct {
	LayersSize int64 // every layer once, however many images share it
	Images     []ImageSummary
	Containers []ContainerSummary
	Volumes    []VolumeSummary

	ImagesActive, ContainersActive, VolumesActive                int
	ImagesReclaimable, ContainersReclaimable, VolumesReclaimable int64
	ContainersSize, VolumesSize                                  int64
}

// DiskUsage measures what `docker system df` shows. Layers shared by
// several images count once in the totals and as SharedSize in each
// image; a layer is reclaimable when no image a container uses has it.
func (e *Engine) DiskUsage(ctx context.Context) (*DiskUsage, error) {
	imgs, err := e.ListImages(ctx, ImageListRequest{All: true, Filters: filters.NewArgs()})
	if err != nil {
		return nil, err
	}
	recs, err := e.Images.List(ctx)
	if err != nil {
		return nil, err
	}
	ctrs, err := e.Containers.List(ctx)
	if err != nil {
		return nil, err
	}
	vols, err := e.Volumes.List(ctx)
	if err != nil {
		return nil, err
	}
	du := &DiskUsage{}
	now := time.Now()

	usersOfImage := map[string]int64{}
	usersOfVolume := map[string]int64{}
	for _, c := range ctrs {
		usersOfImage[c.Image]++
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name != "" {
				usersOfVolume[m.Name]++
			}
		}
		s := e.containerSummary(ctx, c, now, false)
		s.SizeRw = volume.DirSize(e.Snapshots.UpperDir(c.ID))
		du.ContainersSize += s.SizeRw
		if c.State.Running || c.State.Paused || c.State.Restarting {
			du.ContainersActive++
		} else {
			du.ContainersReclaimable += s.SizeRw
		}
		du.Containers = append(du.Containers, s)
	}

	layerSize := map[string]int64{}
	layerImages := map[string]int{}
	usedLayers := map[string]bool{}
	layersOf := map[string][]string{}
	for _, img := range recs {
		id := img.ID.String()
		for _, l := range img.Layers {
			ch := l.ChainID.String()
			layerSize[ch] = l.Size
			layerImages[ch]++
			layersOf[id] = append(layersOf[id], ch)
			if usersOfImage[id] > 0 {
				usedLayers[ch] = true
			}
		}
	}
	for ch, sz := range layerSize {
		du.LayersSize += sz
		if !usedLayers[ch] {
			du.ImagesReclaimable += sz
		}
	}
	for i := range imgs {
		img := &imgs[i]
		img.Containers = usersOfImage[img.ID]
		img.SharedSize = 0
		for _, ch := range layersOf[img.ID] {
			if layerImages[ch] > 1 {
				img.SharedSize += layerSize[ch]
			}
		}
		if img.Containers > 0 {
			du.ImagesActive++
		}
	}
	du.Images = imgs

	for _, v := range vols {
		s := volumeSummary(v)
		s.UsageData = &VolumeUsage{Size: volume.DirSize(v.Mountpoint), RefCount: usersOfVolume[v.Name]}
		du.VolumesSize += s.UsageData.Size
		if s.UsageData.RefCount > 0 {
			du.VolumesActive++
		} else {
			du.VolumesReclaimable += s.UsageData.Size
		}
		du.Volumes = append(du.Volumes, s)
	}
	return du, nil
}
