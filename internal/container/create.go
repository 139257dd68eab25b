package container

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/runtime"
)

// CreateOptions is a container to create: the shape of docker's create
// request. Nil Entrypoint means "the image's"; an empty non-nil one clears it.
type CreateOptions struct {
	// ID, when set, is the new container's ID, from NewID (a caller that
	// starts a monitor ahead of the container needs it first); else
	// Create makes one.
	ID         string
	Name       string
	Config     Config
	HostConfig HostConfig
	// Inherited are the mounts of the containers named by
	// HostConfig.VolumesFrom, resolved by the caller: they come after
	// the image's VOLUMEs and before -v, --mount and --tmpfs, which may
	// replace them.
	Inherited []MountSpec
	// StartPending says that the caller starts the container next (run):
	// should it die first, reconciliation removes a --rm container, as
	// the run would have.
	StartPending bool
	// NetworkSettings are the networks the container is connected to,
	// with the endpoint settings asked for (the engine resolved them).
	NetworkSettings NetworkSettings
}

// Create makes a container from an image, like `docker create`.
func (s *Service) Create(ctx context.Context, opts CreateOptions) (*Container, error) {
	if opts.Name != "" && !validName(opts.Name) {
		return nil, errdefs.InvalidArgument("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", opts.Name)
	}
	id := opts.ID
	if id == "" {
		id = NewID()
	} else if err := s.checkNewID(id); err != nil {
		return nil, err
	}
	tr := newTracer("create")
	s.sweepCrashed(ctx, "")
	// The container's lock is held while its files are made and its
	// record written: a sweep that finds files without a record knows
	// by the lock whether a create is still at work on them.
	l, err := s.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	created := false
	defer func() {
		if created && opts.StartPending {
			l.release() // start takes over the mark (see ctrLock.release)
		} else {
			l.unlock()
		}
	}()
	img, err := s.images.Resolve(ctx, opts.Config.Image)
	if err != nil {
		return nil, err
	}
	imgCfg, err := s.images.Config(img.ID)
	if err != nil {
		return nil, err
	}
	tr.mark("resolve image")
	c := &Container{
		ID:         id,
		Created:    time.Now().UTC(),
		Image:      img.ID.String(),
		Driver:     "overlay2",
		Platform:   "linux",
		Config:     opts.Config,
		HostConfig: opts.HostConfig,
		ExecIDs:    nil,

		NetworkSettings: opts.NetworkSettings,
	}
	if err := mergeImageConfig(&c.Config, &imgCfg.Config); err != nil {
		return nil, err
	}
	argv := append(append([]string{}, c.Config.Entrypoint...), c.Config.Cmd...)
	if len(argv) == 0 {
		return nil, errdefs.InvalidArgument("No command specified")
	}
	c.Path, c.Args = argv[0], argv[1:]
	if err := normaliseHostConfig(&c.HostConfig); err != nil {
		return nil, err
	}
	if c.Config.Hostname == "" {
		c.Config.Hostname = c.ID[:12]
		if c.HostConfig.NetworkMode == "host" {
			// docker: a host-network container is named as the host is.
			if h, err := os.Hostname(); err == nil {
				c.Config.Hostname = h
			}
		}
	}
	if c.HostConfig.Runtime == "" {
		c.HostConfig.Runtime = s.opts.Runtime
	}
	for _, l := range img.Layers {
		c.Internal.ChainIDs = append(c.Internal.ChainIDs, l.ChainID.String())
	}
	c.Internal.RuntimeBinary = c.HostConfig.Runtime
	c.State = State{Status: "created", StartedAt: ZeroTime, FinishedAt: ZeroTime}
	if opts.StartPending {
		start, _ := runtime.ProcessStartTime(os.Getpid())
		c.Internal.StartPendingBy = &Owner{Pid: os.Getpid(), Start: start}
	}
	dir := s.StateDir(c.ID)
	c.HostsPath = filepath.Join(dir, "hosts")
	c.HostnamePath = filepath.Join(dir, "hostname")
	c.ResolvConfPath = filepath.Join(dir, "resolv.conf")
	if c.HostConfig.LogConfig.Type == "json-file" {
		c.LogPath = filepath.Join(dir, c.ID+"-json.log")
	}
	// Everything on disk first, then the record: a failure before the
	// record is written leaves nothing a later command would see, and the
	// deferred cleanup removes the files and the anonymous volumes made
	// for the container.
	ok := false
	defer func() {
		if !ok {
			s.snaps.RemoveContainerLayer(c.ID)
			for _, v := range c.Internal.AnonymousVolumes {
				s.volumes.Remove(context.WithoutCancel(ctx), v, true)
			}
		}
	}()
	mounts, err := s.planMounts(c, imgCfg.Config.Volumes, opts.Inherited)
	if err != nil {
		return nil, err
	}
	c.Mounts = mounts
	if err := s.snaps.CreateContainerLayer(c.ID); err != nil {
		return nil, err
	}
	// /etc/hosts and friends are written at start, once the container's
	// addresses are known (attachNetwork).
	if err := validateExtraHosts(c.HostConfig.ExtraHosts); err != nil {
		return nil, err
	}
	tr.mark("layer dirs")
	for attempt := 0; ; attempt++ {
		err = s.meta.Update(ctx, func(tx *metadata.Tx) error { return s.putNewRecord(tx, c, opts) })
		var gone errVolumeGone
		if !errors.As(err, &gone) || attempt == 2 {
			break
		}
		// A volume was removed after planMounts made sure of it: make
		// sure again (with new anonymous volumes: the first plan's go).
		for _, v := range c.Internal.AnonymousVolumes {
			s.volumes.Remove(context.WithoutCancel(ctx), v, true)
		}
		c.Internal.AnonymousVolumes, c.Internal.NoCopyVolumes = nil, nil
		if c.Mounts, err = s.planMounts(c, imgCfg.Config.Volumes, opts.Inherited); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	ok, created = true, true
	tr.mark("record")
	return c, nil
}

// errVolumeGone is a volume that a concurrent `volume rm` or prune removed
// while the container using it was created.
type errVolumeGone string

func (e errVolumeGone) Error() string {
	return fmt.Sprintf("volume %s was removed while the container was created: try again", string(e))
}

// putNewRecord writes the record of new container c and its name. The
// volumes it mounts must still exist: volume rm decides that a volume is
// unused, and removes it, within one transaction too.
func (s *Service) putNewRecord(tx *metadata.Tx, c *Container, opts CreateOptions) error {
	for _, m := range c.Mounts {
		if m.Type == "volume" && !tx.Has(metadata.BucketVolumes, m.Name) {
			return errVolumeGone(m.Name)
		}
	}
	if !tx.Has(metadata.BucketImages, c.Image) {
		return image.ErrNoSuchImage(opts.Config.Image)
	}
	name := strings.TrimPrefix(opts.Name, "/")
	if name == "" {
		for retry := 0; ; retry++ {
			name = generateName(retry)
			if !tx.Has(metadata.BucketNames, name) {
				break
			}
		}
	} else if owner := tx.GetRaw(metadata.BucketNames, name); owner != nil {
		return errdefs.Conflict("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, owner)
	}
	c.Name = "/" + name
	if tx.Has(metadata.BucketContainers, c.ID) {
		return errdefs.Conflict("container ID %s is already in use", c.ID)
	}
	if err := tx.PutRaw(metadata.BucketNames, name, []byte(c.ID)); err != nil {
		return err
	}
	return tx.Put(metadata.BucketContainers, c.ID, c)
}

// mergeImageConfig fills what the user left unset from the image, with
// docker's rules: --entrypoint drops the image's CMD; env merges by name.
func mergeImageConfig(cfg *Config, img *image.ContainerSpec) error {
	if cfg.Entrypoint == nil {
		cfg.Entrypoint = img.Entrypoint
		if len(cfg.Cmd) == 0 {
			cfg.Cmd = img.Cmd
		}
	} else if len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		cfg.Entrypoint = nil
	}
	env := append([]string{}, img.Env...)
	for _, kv := range cfg.Env {
		env = setEnvVar(env, kv)
	}
	cfg.Env = env
	if cfg.WorkingDir == "" {
		cfg.WorkingDir = img.WorkingDir
	}
	if cfg.WorkingDir != "" && !filepath.IsAbs(cfg.WorkingDir) {
		return errdefs.InvalidArgument("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
	}
	if cfg.User == "" {
		cfg.User = img.User
	}
	if cfg.StopSignal == "" {
		cfg.StopSignal = img.StopSignal
	}
	if cfg.StopTimeout == nil {
		cfg.StopTimeout = img.StopTimeout
	}
	if cfg.Healthcheck == nil && img.Healthcheck != nil {
		hc := *img.Healthcheck
		cfg.Healthcheck = &hc
	} else if cfg.Healthcheck != nil && img.Healthcheck != nil && len(cfg.Healthcheck.Test) == 0 {
		// --health-interval etc. without --health-cmd refine the image's check.
		hc := *cfg.Healthcheck
		hc.Test = img.Healthcheck.Test
		cfg.Healthcheck = &hc
	}
	labels := maps.Clone(img.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, cfg.Labels)
	cfg.Labels = labels
	if len(img.ExposedPorts) > 0 {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		maps.Copy(cfg.ExposedPorts, img.ExposedPorts)
	}
	if len(cfg.OnBuild) == 0 {
		cfg.OnBuild = nil
	}
	return nil
}

func setEnvVar(env []string, kv string) []string {
	name, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if n, _, _ := strings.Cut(e, "="); n == name {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

func normaliseHostConfig(hc *HostConfig) error {
	if hc.NetworkMode == "" || hc.NetworkMode == "default" {
		// Docker's default; the engine has checked any other mode.
		hc.NetworkMode = "bridge"
	}
	if hc.LogConfig.Type == "" {
		hc.LogConfig.Type = "json-file"
	}
	switch hc.LogConfig.Type {
	case "json-file", "none":
	default:
		return errdefs.InvalidArgument("logging driver %q is not supported: use json-file or none", hc.LogConfig.Type)
	}
	if hc.RestartPolicy.Name == "" {
		hc.RestartPolicy.Name = "no"
	}
	switch hc.RestartPolicy.Name {
	case "no", "always", "unless-stopped", "on-failure":
	default:
		return errdefs.InvalidArgument("invalid restart policy %q", hc.RestartPolicy.Name)
	}
	if hc.AutoRemove && hc.RestartPolicy.Name != "no" {
		return errdefs.InvalidArgument("conflicting options: cannot specify both --restart and --rm")
	}
	if hc.IpcMode == "" {
		hc.IpcMode = "private"
	}
	if hc.ShmSize == 0 {
		hc.ShmSize = 64 << 20
	}
	return nil
}

// writeEtcFiles writes the container's /etc/hosts, /etc/hostname and
// /etc/resolv.conf, which the runtime bind-mounts, in Docker's format:
// the loopback entries, --add-host entries, then the container's own
// addresses from att with its hostname.
func writeEtcFiles(c *Container, att *NetworkAttachment) error {
	if att == nil {
		att = &NetworkAttachment{}
	}
	hostname := c.Config.Hostname
	if err := os.WriteFile(c.HostnamePath, []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	var hosts bytes.Buffer
	if c.HostConfig.NetworkMode == "host" {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			hosts.Write(b)
		}
	} else {
		hosts.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	}
	for _, h := range c.HostConfig.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			return errdefs.InvalidArgument("invalid --add-host %q: use host:ip", h)
		}
		if ip == "host-gateway" {
			if att.HostGateway == "" {
				return errdefs.InvalidArgument("unable to derive the IP value for host-gateway")
			}
			ip = att.HostGateway
		}
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, name)
	}
	for _, l := range att.Hosts {
		fmt.Fprintf(&hosts, "%s\n", l)
	}
	for _, ip := range att.Addresses {
		names := append([]string{hostname}, att.Aliases...)
		fmt.Fprintf(&hosts, "%s\t%s\n", ip, strings.Join(names, " "))
	}
	if err := os.WriteFile(c.HostsPath, hosts.Bytes(), 0o644); err != nil {
		return err
	}
	host, _ := os.ReadFile("/etc/resolv.conf")
	return os.WriteFile(c.ResolvConfPath, resolvConf(host, c.HostConfig, att.EmbeddedDNS), 0o644)
}

// defaultResolvers are Docker's name servers for a container whose host
// has only loopback ones, which the container cannot reach.
var defaultResolvers = []string{"8.8.8.8", "8.8.4.4"}

// ParseResolvConf reads the name servers, search domains and options of
// a resolv.conf.
func ParseResolvConf(b []byte) (servers, search, options []string) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			servers = append(servers, fields[1])
		case "search", "domain":
			search = fields[1:]
		case "options":
			options = append(options, fields[1:]...)
		}
	}
	return servers, search, options
}

func isLoopbackResolver(s string) bool { return strings.HasPrefix(s, "127.") || s == "::1" }

// resolvConf derives the container's resolv.conf from the host's (host),
// as Docker does. With the embedded DNS server (user-defined networks) the
// container asks 127.0.0.11 with ndots:0, and the servers it forwards to
// are named in an "# ExtServers" comment (loopback ones as host(...):
// the server reaches them from the host's namespace). Otherwise loopback
// name servers, which the container cannot reach, are dropped, and
// Docker's public defaults stand in when none is left. --dns,
// --dns-search and --dns-option replace the host's.
func resolvConf(host []byte, hc HostConfig, embedded bool) []byte {
	servers, search, options := ParseResolvConf(host)
	if len(hc.DNS) > 0 {
		servers = hc.DNS
	}
	if len(hc.DNSSearch) > 0 {
		search = hc.DNSSearch
	}
	if len(hc.DNSOptions) > 0 {
		options = hc.DNSOptions
	}
	if len(search) == 1 && search[0] == "." {
		search = nil
	}
	var b bytes.Buffer
	if embedded {
		var ext []string
		for _, s := range servers {
			if isLoopbackResolver(s) {
				s = "host(" + s + ")"
			}
			ext = append(ext, s)
		}
		ndots := false
		for _, o := range options {
			ndots = ndots || strings.HasPrefix(o, "ndots:")
		}
		if !ndots {
			options = append([]string{"ndots:0"}, options...)
		}
		b.WriteString("nameserver 127.0.0.11\n")
		if len(search) > 0 {
			fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
		}
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
		fmt.Fprintf(&b, "\n# ExtServers: [%s]\n", strings.Join(ext, " "))
		return b.Bytes()
	}
	if hc.NetworkMode != "host" && len(hc.DNS) == 0 {
		var kept []string
		for _, s := range servers {
			if !isLoopbackResolver(s) {
				kept = append(kept, s)
			}
		}
		servers = kept
		if len(servers) == 0 {
			servers = defaultResolvers
		}
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes()
}

// checkNewID refuses a caller-chosen container ID that is malformed or
// whose files already exist (creating the container would overwrite
// them).
func (s *Service) checkNewID(id string) error {
	if !validID(id) {
		return errdefs.InvalidArgument("invalid container ID %q: want 64 lowercase hex digits", id)
	}
	for _, dir := range []string{s.StateDir(id), s.snaps.ContainerDir(id)} {
		if _, err := os.Lstat(dir); err == nil {
			return errdefs.Conflict("container ID %s is already in use", id)
		}
	}
	return nil
}
