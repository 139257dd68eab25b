package engine

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/volume"
)

// This file is the one mapping from berth's records to Docker's inspect
// documents (apitypes.go): `inspect` in the CLI and the API server both
// use it, and neither builds a document of its own.

// ContainerInspect returns the inspect document of container ref; with
// size, SizeRw and SizeRootFs too (a walk of its writable layer).
func (e *Engine) ContainerInspect(ctx context.Context, ref string, size bool) (*ContainerInspect, error) {
	c, err := e.Containers.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	doc := e.containerDocument(c)
	if size {
		rw, rootfs, err := e.ContainerSize(ctx, c)
		if err != nil {
			return nil, err
		}
		doc.SizeRw, doc.SizeRootFs = &rw, &rootfs
	}
	return doc, nil
}

// ContainerSize is Docker's SizeRw (bytes of the files in the container's
// writable layer) and SizeRootFs (that plus its image's size).
func (e *Engine) ContainerSize(ctx context.Context, c *container.Container) (rw, rootfs int64, err error) {
	rw, err = layer.Size(ctx, e.Snapshots.UpperDir(c.ID))
	if err != nil {
		return 0, 0, fmt.Errorf("size of container %s: %w", c.ShortName(), err)
	}
	rootfs = rw
	if img, err := e.Images.Resolve(ctx, c.Image); err == nil {
		rootfs += img.Size
	}
	return rw, rootfs, nil
}

// ImageInspect returns the inspect document of image ref.
func (e *Engine) ImageInspect(ctx context.Context, ref string) (*ImageInspect, error) {
	img, err := e.Images.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	cfg, err := e.Images.Config(img.ID)
	if err != nil {
		return nil, err
	}
	return e.imageDocument(img, cfg), nil
}

// VolumeInspect returns the inspect document of volume name.
func (e *Engine) VolumeInspect(ctx context.Context, name string) (*Volume, error) {
	v, err := e.Volumes.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return volumeDocument(v), nil
}

// Inspect is the top-level `inspect`: the container, else the image, else
// the network, else the volume ref names, in docker's order (only kind,
// when set: "container", "image", "network", "volume"). size applies to
// containers.
func (e *Engine) Inspect(ctx context.Context, ref, kind string, size bool) (any, error) {
	switch kind {
	case "", "container", "image", "network", "volume":
	default:
		return nil, errdefs.InvalidArgument("%q is not a valid value for --type", kind)
	}
	if kind == "" || kind == "container" {
		doc, err := e.ContainerInspect(ctx, ref, size)
		if err == nil || !errdefs.IsNotFound(err) {
			return doc, err
		}
	}
	if kind == "" || kind == "image" {
		doc, err := e.ImageInspect(ctx, ref)
		if err == nil || !errdefs.IsNotFound(err) {
			return doc, err
		}
	}
	if kind == "" || kind == "network" {
		doc, err := e.NetworkInspect(ctx, ref)
		if err == nil || !errdefs.IsNotFound(err) || kind == "network" {
			return doc, err // docker: "network X not found" for --type network
		}
	}
	if kind == "" || kind == "volume" {
		doc, err := e.VolumeInspect(ctx, ref)
		if err == nil || !errdefs.IsNotFound(err) {
			return doc, err
		}
	}
	return nil, errdefs.NotFound("No such object: %s", ref)
}

// ContainerCommand is a container's COMMAND as Docker lists it: the path,
// then the arguments, each one holding a space in single quotes.
func ContainerCommand(path string, args []string) string {
	if len(args) == 0 {
		return path
	}
	parts := make([]string, 0, len(args)+1)
	parts = append(parts, path)
	for _, a := range args {
		if strings.Contains(a, " ") {
			a = "'" + a + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func (e *Engine) containerDocument(c *container.Container) *ContainerInspect {
	doc := &ContainerInspect{
		ID:              c.ID,
		Created:         container.FormatTime(c.Created),
		Path:            c.Path,
		Args:            orEmpty(c.Args),
		State:           containerState(c.State),
		Image:           c.Image,
		ResolvConfPath:  c.ResolvConfPath,
		HostnamePath:    c.HostnamePath,
		HostsPath:       c.HostsPath,
		LogPath:         c.LogPath,
		Name:            c.Name,
		RestartCount:    c.RestartCount,
		Driver:          c.Driver,
		Platform:        c.Platform,
		MountLabel:      c.MountLabel,
		ProcessLabel:    c.ProcessLabel,
		AppArmorProfile: c.AppArmorProfile,
		ExecIDs:         nilIfEmpty(c.ExecIDs),
		HostConfig:      hostConfig(&c.HostConfig),
		GraphDriver:     e.containerGraphDriver(c),
		Mounts:          mountPoints(c),
		Config:          containerConfig(&c.Config),
		NetworkSettings: networkSettings(c),
	}
	if container.ParseTime(c.State.StartedAt).IsZero() {
		// Docker makes these files when a container first starts, and
		// reports none before (berth makes them at create).
		doc.ResolvConfPath, doc.HostnamePath, doc.HostsPath, doc.LogPath = "", "", "", ""
	}
	doc.HostConfig.Links = inspectLinks(c)
	e.fillSandbox(c, doc.NetworkSettings)
	return doc
}

func containerState(s container.State) *ContainerState {
	st := &ContainerState{
		Status: s.Status, Running: s.Running, Paused: s.Paused, Restarting: s.Restarting,
		OOMKilled: s.OOMKilled, Dead: s.Dead, Pid: s.Pid, ExitCode: s.ExitCode, Error: s.Error,
		StartedAt: orZeroTime(s.StartedAt), FinishedAt: orZeroTime(s.FinishedAt),
	}
	if h := s.Health; h != nil {
		st.Health = &Health{Status: h.Status, FailingStreak: h.FailingStreak, Log: []*HealthcheckResult{}}
		for _, l := range h.Log {
			st.Health.Log = append(st.Health.Log, &HealthcheckResult{Start: l.Start, End: l.End, ExitCode: l.ExitCode, Output: l.Output})
		}
	}
	return st
}

func hostConfig(h *container.HostConfig) *HostConfig {
	out := &HostConfig{
		Binds:           nilIfEmpty(h.Binds),
		ContainerIDFile: h.ContainerIDFile,
		LogConfig:       LogConfig{Type: h.LogConfig.Type, Config: orEmptyMap(h.LogConfig.Config)},
		NetworkMode:     h.NetworkMode,
		PortBindings:    map[string][]PortBinding{},
		RestartPolicy:   RestartPolicy{Name: h.RestartPolicy.Name, MaximumRetryCount: h.RestartPolicy.MaximumRetryCount},
		AutoRemove:      h.AutoRemove,
		VolumeDriver:    h.VolumeDriver,
		VolumesFrom:     nilIfEmpty(h.VolumesFrom),
		CapAdd:          capabilities(h.CapAdd),
		CapDrop:         capabilities(h.CapDrop),
		// berth gives every container a cgroup namespace when the host
		// has cgroup v2 and shares the host's on v1, as Docker's default does.
		CgroupnsMode:    cgroupnsMode(),
		DNS:             orEmpty(h.DNS),
		DNSOptions:      orEmpty(h.DNSOptions),
		DNSSearch:       orEmpty(h.DNSSearch),
		ExtraHosts:      nilIfEmpty(h.ExtraHosts),
		Links:           nil,
		PublishAllPorts: h.PublishAllPorts,
		GroupAdd:        nilIfEmpty(h.GroupAdd),
		IpcMode:         h.IpcMode,
		OomScoreAdj:     h.OomScoreAdj,
		PidMode:         h.PidMode,
		Privileged:      h.Privileged,
		ReadonlyRootfs:  h.ReadonlyRootfs,
		SecurityOpt:     nilIfEmpty(h.SecurityOpt),
		Tmpfs:           h.Tmpfs,
		UTSMode:         h.UTSMode,
		ShmSize:         h.ShmSize,
		Sysctls:         h.Sysctls,
		Runtime:         h.Runtime,
		Init:            h.Init,
	}
	if out.LogConfig.Type == "" {
		out.LogConfig.Type = "json-file"
	}
	if out.RestartPolicy.Name == "" {
		out.RestartPolicy.Name = "no"
	}
	for port, bs := range h.PortBindings {
		list := make([]PortBinding, 0, len(bs))
		for _, b := range bs {
			list = append(list, PortBinding{HostIP: b.HostIP, HostPort: b.HostPort})
		}
		out.PortBindings[port] = list
	}
	r := h.Resources
	out.Resources = Resources{
		CPUShares: r.CPUShares, Memory: r.Memory, NanoCPUs: r.NanoCPUs,
		BlkioWeightDevice: []*WeightDevice{}, BlkioDeviceReadBps: []*ThrottleDevice{},
		BlkioDeviceWriteBps: []*ThrottleDevice{}, BlkioDeviceReadIOps: []*ThrottleDevice{},
		BlkioDeviceWriteIOps: []*ThrottleDevice{},
		CPUPeriod:            r.CPUPeriod, CPUQuota: r.CPUQuota, CpusetCpus: r.CpusetCpus,
		Devices:           []DeviceMapping{},
		MemoryReservation: r.MemoryReservation, MemorySwap: r.MemorySwap,
		OomKillDisable: r.OomKillDisable, PidsLimit: r.PidsLimit, Ulimits: []*Ulimit{},
	}
	// Docker stores the swap limit it applies: with a memory limit and no
	// swap limit, a container may swap as much as its memory (2x in all).
	if r.Memory > 0 && r.MemorySwap == 0 {
		out.MemorySwap = 2 * r.Memory
	}
	for _, u := range r.Ulimits {
		if u != nil {
			out.Ulimits = append(out.Ulimits, &Ulimit{Name: u.Name, Hard: u.Hard, Soft: u.Soft})
		}
	}
	for _, m := range h.Mounts {
		out.Mounts = append(out.Mounts, mountSpec(m))
	}
	if !h.Privileged {
		out.MaskedPaths = runtime.DefaultMaskedPaths()
		out.ReadonlyPaths = runtime.DefaultReadonlyPaths()
	}
	return out
}

func mountSpec(m container.MountSpec) Mount {
	out := Mount{Type: m.Type, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
	switch m.Type {
	case "bind":
		if m.Propagation != "" {
			out.BindOptions = &BindOptions{Propagation: m.Propagation}
		}
	case "volume":
		if m.NoCopy {
			out.VolumeOptions = &VolumeOptions{NoCopy: true}
		}
	case "tmpfs":
		if m.TmpfsSize != 0 || m.TmpfsMode != 0 {
			out.TmpfsOptions = &TmpfsOptions{SizeBytes: m.TmpfsSize, Mode: m.TmpfsMode}
		}
	}
	return out
}

// mountPoints are a container's mounts as Docker lists them: not the
// --tmpfs ones (HostConfig.Tmpfs shows those), and with Docker's Mode:
// "z" for a named volume given without a mode (by -v or --mount), ""
// for every other --mount.
func mountPoints(c *container.Container) []MountPoint {
	anonymous := map[string]bool{}
	for _, v := range c.Internal.AnonymousVolumes {
		anonymous[v] = true
	}
	byMountFlag := map[string]bool{}
	for _, m := range c.HostConfig.Mounts {
		byMountFlag[m.Target] = true
	}
	out := make([]MountPoint, 0, len(c.Mounts))
	for _, m := range c.Mounts {
		if _, ok := c.HostConfig.Tmpfs[m.Destination]; ok && m.Type == "tmpfs" {
			continue
		}
		mode := m.Mode
		switch {
		case m.Type == "volume" && !anonymous[m.Name] && (mode == "" || byMountFlag[m.Destination]):
			mode = "z"
		case byMountFlag[m.Destination]:
			mode = ""
		}
		out = append(out, MountPoint{
			Type: m.Type, Name: m.Name, Source: m.Source, Destination: m.Destination,
			Driver: m.Driver, Mode: mode, RW: m.RW, Propagation: m.Propagation,
		})
	}
	return out
}

// capabilities are written as Docker stores them: CAP_ prefixed, upper
// case ("ALL" stays as it is).
func capabilities(caps []string) []string {
	if len(caps) == 0 {
		return nil
	}
	out := make([]string, len(caps))
	for i, c := range caps {
		c = strings.ToUpper(c)
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out[i] = c
	}
	return out
}

func containerConfig(c *container.Config) *ContainerConfig {
	return &ContainerConfig{
		Hostname: c.Hostname, Domainname: c.Domainname, User: c.User,
		AttachStdin: c.AttachStdin, AttachStdout: c.AttachStdout, AttachStderr: c.AttachStderr,
		ExposedPorts: c.ExposedPorts, Tty: c.Tty, OpenStdin: c.OpenStdin, StdinOnce: c.StdinOnce,
		Env: nilIfEmpty(c.Env), Cmd: nilIfEmpty(c.Cmd), Healthcheck: healthConfig(c.Healthcheck),
		Image: c.Image, Volumes: nilIfEmptySet(c.Volumes), WorkingDir: c.WorkingDir,
		Entrypoint: nilIfEmpty(c.Entrypoint), OnBuild: nilIfEmpty(c.OnBuild),
		Labels: orEmptyMap(c.Labels), StopSignal: c.StopSignal, StopTimeout: c.StopTimeout,
	}
}

func healthConfig(h *image.Healthcheck) *HealthConfig {
	if h == nil {
		return nil
	}
	return &HealthConfig{
		Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
		StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
	}
}

func (e *Engine) containerGraphDriver(c *container.Container) GraphDriverData {
	lowers := []string{e.Snapshots.InitDir(c.ID)}
	for i := len(c.Internal.ChainIDs) - 1; i >= 0; i-- {
		lowers = append(lowers, e.Snapshots.Dir(digest.Digest(c.Internal.ChainIDs[i])))
	}
	return GraphDriverData{Name: "overlay2", Data: map[string]string{
		"LowerDir":  strings.Join(lowers, ":"),
		"MergedDir": e.Containers.RootfsDir(c.ID),
		"UpperDir":  e.Snapshots.UpperDir(c.ID),
		"WorkDir":   e.Snapshots.ContainerDir(c.ID) + "/work",
	}}
}

func (e *Engine) imageDocument(img *image.Image, cfg *image.Config) *ImageInspect {
	tags := make([]string, 0, len(img.RepoTags))
	for _, t := range img.RepoTags {
		tags = append(tags, image.FamiliarString(t))
	}
	sort.Strings(tags)
	digests := make([]string, 0, len(img.RepoDigests))
	for _, d := range img.RepoDigests {
		digests = append(digests, image.FamiliarString(d))
	}
	layers := make([]string, len(cfg.RootFS.DiffIDs))
	for i, d := range cfg.RootFS.DiffIDs {
		layers[i] = d.String()
	}
	comment := cfg.Comment
	if comment == "" && len(cfg.History) > 0 {
		// docker import keeps its "Imported from" note in the config's
		// comment too; berth's import writes it to the history only.
		comment = cfg.History[len(cfg.History)-1].Comment
	}
	doc := &ImageInspect{
		ID: img.ID.String(), RepoTags: tags, RepoDigests: digests, Parent: string(img.Parent),
		Comment: comment, Created: container.FormatTime(img.Created), Container: cfg.Container,
		ContainerConfig: &ContainerConfig{}, DockerVersion: cfg.DockerVer, Author: cfg.Author,
		Config:       imageConfig(&cfg.Config),
		Architecture: cfg.Architecture, Variant: cfg.Variant, Os: cfg.OS,
		Size: img.Size, VirtualSize: img.Size,
		GraphDriver: GraphDriverData{Name: "overlay2", Data: e.imageLayerDirs(img)},
		RootFS:      ImageRootFS{Type: "layers", Layers: layers},
		Metadata:    ImageMetadata{LastTagTime: img.LastTagTime},
	}
	if cfg.Created != nil {
		doc.Created = container.FormatTime(*cfg.Created)
	}
	return doc
}

// imageLayerDirs are the snapshot directories of an image's layers, top
// one as UpperDir, in the keys Docker's overlay2 driver reports.
func (e *Engine) imageLayerDirs(img *image.Image) map[string]string {
	n := len(img.Layers)
	if n == 0 {
		return nil
	}
	top := e.Snapshots.Dir(img.Layers[n-1].ChainID)
	data := map[string]string{
		"MergedDir": strings.TrimSuffix(top, "/fs") + "/merged",
		"UpperDir":  top,
		"WorkDir":   strings.TrimSuffix(top, "/fs") + "/work",
	}
	if n > 1 {
		var lowers []string
		for i := n - 2; i >= 0; i-- {
			lowers = append(lowers, e.Snapshots.Dir(img.Layers[i].ChainID))
		}
		data["LowerDir"] = strings.Join(lowers, ":")
	}
	return data
}

func imageConfig(s *image.ContainerSpec) *ContainerConfig {
	return &ContainerConfig{
		Hostname: s.Hostname, Domainname: s.Domainname, User: s.User,
		ExposedPorts: s.ExposedPorts, Env: nilIfEmpty(s.Env), Cmd: nilIfEmpty(s.Cmd),
		Healthcheck: healthConfig(s.Healthcheck), ArgsEscaped: s.ArgsEscaped,
		Volumes: nilIfEmptySet(s.Volumes), WorkingDir: s.WorkingDir,
		Entrypoint: nilIfEmpty(s.Entrypoint), OnBuild: nilIfEmpty(s.OnBuild), Labels: nilIfEmptyMap(s.Labels),
		StopSignal: s.StopSignal, StopTimeout: s.StopTimeout, Shell: s.Shell,
	}
}

func volumeDocument(v *volume.Volume) *Volume {
	doc := &Volume{
		Driver: v.Driver, Labels: nilIfEmptyMap(v.Labels), Mountpoint: v.Mountpoint, Name: v.Name,
		Options: nilIfEmptyMap(v.Options), Scope: v.Scope,
	}
	if !v.CreatedAt.IsZero() {
		doc.CreatedAt = v.CreatedAt.Format(time.RFC3339)
	}
	return doc
}

// HistoryItem is one entry of an image's history, newest first.
type HistoryItem struct {
	ID        string // the image this entry made, or "<missing>"
	Created   time.Time
	CreatedBy string
	Size      int64
	Comment   string
}

// ImageHistory is Docker's image history: the image's history entries,
// newest first, each paired with the size of the layer it made; the
// top entry carries the image's ID and each entry below it its parent's,
// as long as the parent chain is in the store ("<missing>" after that).
func (e *Engine) ImageHistory(ctx context.Context, ref string) ([]HistoryItem, error) {
	img, err := e.Images.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	cfg, err := e.Images.Config(img.ID)
	if err != nil {
		return nil, err
	}
	items := make([]HistoryItem, len(cfg.History))
	layer := 0
	for i, h := range cfg.History {
		it := HistoryItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment}
		if h.Created != nil {
			it.Created = *h.Created
		}
		if !h.EmptyLayer && layer < len(img.Layers) {
			it.Size = img.Layers[layer].Size
			layer++
		}
		items[len(cfg.History)-1-i] = it
	}
	cur := img
	for i := range items {
		items[i].ID = cur.ID.String()
		if cur.Parent == "" {
			break
		}
		if cur, err = e.Images.Resolve(ctx, cur.Parent.String()); err != nil {
			break
		}
	}
	return items, nil
}

func orZeroTime(s string) string {
	if s == "" {
		return container.ZeroTime
	}
	return s
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nilIfEmptyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func nilIfEmptySet(m map[string]struct{}) map[string]struct{} {
	if len(m) == 0 {
		return nil
	}
	return m
}

// cgroupnsMode: berth gives every container its own cgroup namespace.
func cgroupnsMode() string { return "private" }
