package engine

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/filters"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/volume"
)

// The request and result types below follow the Docker Engine API's
// (GET /containers/json, /images/json, /volumes) field for field. berth
// declares its own rather than linking the moby API module: that module
// brings image-spec and go-digest, whose package initialisation every
// berth process (monitors and inits too) would pay for.

// ContainerListRequest is GET /containers/json.
type ContainerListRequest struct {
	All     bool
	Limit   int // the n newest, whatever their state; 0: no limit
	Size    bool
	Filters filters.Args
}

// ContainerSummary is one container of the list.
type ContainerSummary struct {
	ID         string `json:"Id"`
	Names      []string
	Image      string // as the user named it
	ImageID    string
	Command    string
	Created    int64
	Ports      []Port
	SizeRw     int64 `json:",omitempty"`
	SizeRootFs int64 `json:",omitempty"`
	Labels     map[string]string
	State      string
	Status     string // "Up 5 minutes", "Exited (0) 2 hours ago"
	HostConfig struct {
		NetworkMode string `json:",omitempty"`
	}
	// Networks are the names of the networks the container is connected to.
	Networks []string `json:"-"`
	Mounts   []MountPoint

	// CreatedAt is Created with its nanoseconds, for ordering and display.
	CreatedAt time.Time `json:"-"`
}

var containerListFilters = []string{"ancestor", "before", "expose", "exited", "health", "id", "isolation", "is-task", "label", "name", "network", "publish", "since", "status", "volume"}

// ListContainers is `docker ps`: the containers that pass the filters,
// newest first.
func (e *Engine) ListContainers(ctx context.Context, req ContainerListRequest) ([]ContainerSummary, error) {
	f := req.Filters
	if err := f.Validate(containerListFilters...); err != nil {
		return nil, err
	}
	all := req.All || req.Limit > 0
	for _, v := range f.Get("status") {
		switch v {
		case "created", "restarting", "running", "removing", "paused", "exited", "dead":
		default:
			return nil, filters.InvalidFilter("status", v)
		}
		all = true
	}
	for _, v := range f.Get("health") {
		switch v {
		case "starting", "healthy", "unhealthy", "none":
		default:
			return nil, errdefs.InvalidArgument("Unrecognised filter value for health: %s", v)
		}
	}
	var exited []int
	for _, v := range f.Get("exited") {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid filter 'exited=%s': %v", v, err)
		}
		exited = append(exited, n)
	}
	isTask, err := f.GetBoolOrDefault("is-task", false)
	if err != nil {
		return nil, err
	}
	var before, since time.Time
	for _, k := range []string{"before", "since"} {
		for _, v := range f.Get(k) {
			c, err := e.Containers.Get(ctx, v)
			if err != nil {
				return nil, err
			}
			if k == "before" {
				before = c.Created
			} else {
				since = c.Created
			}
		}
	}
	// ancestor: the images named and every image built on them.
	var ancestors map[string]bool
	if f.Contains("ancestor") {
		ancestors = map[string]bool{}
		imgs, err := e.Images.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range f.Get("ancestor") {
			img, err := e.Images.Resolve(ctx, v)
			if err != nil {
				continue // docker: an unknown ancestor matches nothing
			}
			addDescendants(ancestors, img.ID.String(), imgs)
		}
	}

	ctrs, err := e.Containers.ListForSummary(ctx)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(ctrs, func(i, j int) bool { return ctrs[i].Created.After(ctrs[j].Created) })
	now := time.Now()
	var out []ContainerSummary
	for _, c := range ctrs {
		if !all && !c.State.Running && !c.State.Restarting && !c.State.Paused {
			continue
		}
		if !before.IsZero() && !c.Created.Before(before) || !since.IsZero() && !c.Created.After(since) {
			continue
		}
		name := c.ShortName()
		if f.Contains("name") && !f.Match("name", name) && !f.Match("name", "/"+name) {
			continue
		}
		if !f.FuzzyMatch("id", c.ID) || !f.MatchKVList("label", c.Config.Labels) || !f.ExactMatch("status", c.State.Status) {
			continue
		}
		if len(exited) > 0 && !exitedWith(c, exited) {
			continue
		}
		if !f.ExactMatch("health", healthOf(c)) || !onNetwork(f, c) {
			continue
		}
		if f.Contains("is-task") && isTask {
			continue // no swarm: no container is a task
		}
		if f.Contains("isolation") && !f.ExactMatch("isolation", "default") && !f.ExactMatch("isolation", "") {
			continue
		}
		if f.Contains("publish") && !publishes(c, f.Get("publish")) {
			continue
		}
		if f.Contains("expose") && !exposes(c, f.Get("expose")) {
			continue
		}
		if ancestors != nil && !ancestors[c.Image] {
			continue
		}
		if f.Contains("volume") && !mountsAny(c, f.Get("volume")) {
			continue
		}
		if req.Limit > 0 && len(out) >= req.Limit {
			break
		}
		out = append(out, e.containerSummary(ctx, c, now, req.Size))
	}
	return out, nil
}

func addDescendants(set map[string]bool, id string, imgs []image.Image) {
	if set[id] {
		return
	}
	set[id] = true
	for _, img := range imgs {
		if img.Parent.String() == id {
			addDescendants(set, img.ID.String(), imgs)
		}
	}
}

func exitedWith(c *container.Container, codes []int) bool {
	if c.State.Running || container.ParseTime(c.State.StartedAt).IsZero() {
		return false
	}
	for _, n := range codes {
		if c.State.ExitCode == n {
			return true
		}
	}
	return false
}

func healthOf(c *container.Container) string {
	if c.State.Health == nil {
		return "none"
	}
	return c.State.Health.Status
}

func exposes(c *container.Container, ports []string) bool {
	for _, p := range ports {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		if _, ok := c.Config.ExposedPorts[p]; ok {
			return true
		}
	}
	return false
}

// mountsAny: a volume filter names a volume, a bind's source or a
// mount's destination.
func mountsAny(c *container.Container, vals []string) bool {
	for _, m := range c.Mounts {
		for _, v := range vals {
			if v == m.Destination || m.Name != "" && v == m.Name || m.Name == "" && v == m.Source {
				return true
			}
		}
	}
	return false
}

func (e *Engine) containerSummary(ctx context.Context, c *container.Container, now time.Time, size bool) ContainerSummary {
	s := ContainerSummary{
		ID: c.ID, Names: []string{"/" + c.ShortName()}, Image: c.Config.Image, ImageID: c.Image,
		Command: ContainerCommand(c.Path, c.Args),
		Created: c.Created.Unix(), CreatedAt: c.Created, Labels: c.Config.Labels,
		State: c.State.Status, Status: StatusText(c, now), Ports: summaryPorts(c),
	}
	s.HostConfig.NetworkMode = c.HostConfig.NetworkMode
	s.Networks = networkNames(c)
	for _, m := range c.Mounts {
		s.Mounts = append(s.Mounts, MountPoint{Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination,
			Driver: m.Driver, Mode: m.Mode, RW: m.RW, Propagation: m.Propagation})
	}
	if size {
		// A container whose size cannot be read shows 0B, as in docker.
		s.SizeRw, s.SizeRootFs, _ = e.ContainerSize(ctx, c)
	}
	return s
}

// StatusText is Docker's human status of a container ("Up 2 minutes
// (healthy)", "Exited (3) 5 seconds ago").
func StatusText(c *container.Container, now time.Time) string {
	st := c.State
	switch {
	case st.Restarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, HumanDuration(now.Sub(container.ParseTime(st.FinishedAt))))
	case st.Running:
		s := "Up " + HumanDuration(now.Sub(container.ParseTime(st.StartedAt)))
		if st.Paused {
			s += " (Paused)"
		} else if st.Health != nil {
			switch st.Health.Status {
			case "starting":
				s += " (health: starting)"
			default:
				s += " (" + st.Health.Status + ")"
			}
		}
		return s
	case st.Status == "removing":
		return "Removal In Progress"
	case st.Dead:
		return "Dead"
	case st.Status == "created" || container.ParseTime(st.StartedAt).IsZero():
		return "Created"
	}
	return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, HumanDuration(now.Sub(container.ParseTime(st.FinishedAt))))
}

// HumanDuration renders a duration as Docker's ps and images do ("2
// minutes", "About an hour").
func HumanDuration(d time.Duration) string {
	seconds := int(d.Seconds())
	switch {
	case seconds < 1:
		return "Less than a second"
	case seconds == 1:
		return "1 second"
	case seconds < 60:
		return fmt.Sprintf("%d seconds", seconds)
	}
	minutes := int(d.Minutes())
	switch {
	case minutes == 1:
		return "About a minute"
	case minutes < 60:
		return fmt.Sprintf("%d minutes", minutes)
	}
	hours := int(d.Hours() + 0.5)
	switch {
	case hours == 1:
		return "About an hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		return fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		return fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// ImageListRequest is GET /images/json.
type ImageListRequest struct {
	All     bool
	Filters filters.Args // dangling, label, before, since, reference
}

// ImageSummary is one image of the list.
type ImageSummary struct {
	Containers  int64
	Created     int64
	ID          string `json:"Id"`
	Labels      map[string]string
	ParentID    string `json:"ParentId"`
	RepoDigests []string
	RepoTags    []string // familiar "name:tag"
	SharedSize  int64
	Size        int64

	CreatedAt time.Time `json:"-"`
}

var imageListFilters = []string{"dangling", "label", "label!", "before", "since", "reference", "until"}

// ListImages is `docker images`: newest first, each with its tags that
// pass the reference filter.
func (e *Engine) ListImages(ctx context.Context, req ImageListRequest) ([]ImageSummary, error) {
	f := req.Filters
	if err := f.Validate(imageListFilters...); err != nil {
		return nil, err
	}
	dangling, err := optionalBool(f, "dangling")
	if err != nil {
		return nil, err
	}
	var before, since, until time.Time
	for _, k := range []string{"before", "since"} {
		for _, v := range f.Get(k) {
			img, err := e.Images.Resolve(ctx, v)
			if err != nil {
				return nil, err
			}
			if k == "before" {
				before = img.Created
			} else {
				since = img.Created
			}
		}
	}
	for _, v := range f.Get("until") {
		t, err := filters.ParseTime(v, time.Now())
		if err != nil {
			return nil, err
		}
		until = t
	}
	imgs, err := e.Images.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []ImageSummary
	for _, img := range imgs {
		if dangling != nil && (len(img.RepoTags) == 0) != *dangling {
			continue
		}
		if !before.IsZero() && !img.Created.Before(before) || !since.IsZero() && !img.Created.After(since) ||
			!until.IsZero() && img.Created.After(until) {
			continue
		}
		var labels map[string]string
		if cfg, err := e.Images.Config(img.ID); err == nil {
			labels = cfg.Config.Labels
		}
		if !f.MatchLabels(labels) {
			continue
		}
		var tags []string
		for _, t := range img.RepoTags {
			if !f.Contains("reference") || referenceMatches(f.Get("reference"), t) {
				tags = append(tags, image.FamiliarString(t))
			}
		}
		if f.Contains("reference") && len(tags) == 0 {
			continue
		}
		var digests []string
		for _, d := range img.RepoDigests {
			digests = append(digests, image.FamiliarString(d))
		}
		out = append(out, ImageSummary{
			Containers: -1, Created: img.Created.Unix(), CreatedAt: img.Created, ID: img.ID.String(), Labels: labels,
			ParentID: img.Parent.String(), RepoDigests: digests, RepoTags: tags, SharedSize: -1, Size: img.Size,
		})
	}
	return out, nil
}

// referenceMatches matches a stored tag against reference filters: shell
// patterns on the familiar name, with or without the tag ("busy*",
// "busybox:1.*").
func referenceMatches(patterns []string, tag string) bool {
	fam := image.FamiliarString(tag)
	repo, _ := image.FamiliarRepoTag(tag)
	for _, pat := range patterns {
		for _, s := range []string{fam, repo, tag} {
			if ok, err := path.Match(pat, s); err == nil && ok {
				return true
			}
		}
	}
	return false
}

// VolumeListRequest is GET /volumes.
type VolumeListRequest struct {
	Filters filters.Args // dangling, name, driver, label
}

// VolumeSummary is one volume of the list (and of df -v).
type VolumeSummary struct {
	CreatedAt  string `json:",omitempty"`
	Driver     string
	Labels     map[string]string
	Mountpoint string
	Name       string
	Options    map[string]string
	Scope      string
	UsageData  *VolumeUsage `json:",omitempty"`
}

// VolumeUsage is a volume's size and the number of containers using it;
// -1 where not computed.
type VolumeUsage struct {
	Size     int64
	RefCount int64
}

var volumeListFilters = []string{"dangling", "name", "driver", "label", "label!"}

// ListVolumes is `docker volume ls`, sorted by name.
func (e *Engine) ListVolumes(ctx context.Context, req VolumeListRequest) ([]VolumeSummary, error) {
	f := req.Filters
	if err := f.Validate(volumeListFilters...); err != nil {
		return nil, err
	}
	dangling, err := optionalBool(f, "dangling")
	if err != nil {
		return nil, err
	}
	vols, err := e.Volumes.List(ctx)
	if err != nil {
		return nil, err
	}
	var users map[string]int64
	if dangling != nil {
		if users, err = e.volumeUsers(ctx); err != nil {
			return nil, err
		}
	}
	var out []VolumeSummary
	for _, v := range vols {
		if !f.Match("name", v.Name) || !f.ExactMatch("driver", v.Driver) || !f.MatchLabels(v.Labels) {
			continue
		}
		if dangling != nil && (users[v.Name] == 0) != *dangling {
			continue
		}
		out = append(out, volumeSummary(v))
	}
	return out, nil
}

func volumeSummary(v *volume.Volume) VolumeSummary {
	return VolumeSummary{CreatedAt: v.CreatedAt.Format(time.RFC3339), Driver: v.Driver, Labels: v.Labels, Mountpoint: v.Mountpoint,
		Name: v.Name, Options: v.Options, Scope: v.Scope}
}

// volumeUsers counts the containers that mount each volume.
func (e *Engine) volumeUsers(ctx context.Context) (map[string]int64, error) {
	ctrs, err := e.Containers.List(ctx)
	if err != nil {
		return nil, err
	}
	users := map[string]int64{}
	for _, c := range ctrs {
		for _, m := range c.Mounts {
			if m.Type == "volume" && m.Name != "" {
				users[m.Name]++
			}
		}
	}
	return users, nil
}

// optionalBool is a true/false filter that may be absent (nil).
func optionalBool(f filters.Args, key string) (*bool, error) {
	if !f.Contains(key) {
		return nil, nil
	}
	b, err := f.GetBoolOrDefault(key, false)
	if err != nil {
		return nil, err
	}
	return &b, nil
}
