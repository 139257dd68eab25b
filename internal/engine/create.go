package engine

import (
	"context"
	"os"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/runtime"
)

// The request types of container creation, in the shape of the Docker
// Engine API's POST /containers/create body (field and JSON names are
// Docker's). They are berth's own record types, so a request needs no
// translation, and the front ends name them through the engine only.
// (The moby API module's types would bring go-digest's regexps into the
// package initialisation of every berth process.)
type (
	CreateContainerConfig = container.Config
	CreateHostConfig      = container.HostConfig
	CreateResources       = container.Resources
	CreateUlimit          = container.Ulimit
	CreateLogConfig       = container.LogConfig
	CreateRestartPolicy   = container.RestartPolicy
	MountSpec             = container.MountSpec
	CreateHealthConfig    = image.Healthcheck
)

// ContainerCreateRequest is POST /containers/create: the name and platform
// of the query string and the body's Config and HostConfig.
type ContainerCreateRequest struct {
	Name             string
	Platform         string
	Config           CreateContainerConfig
	HostConfig       CreateHostConfig
	NetworkingConfig NetworkingConfig

	// id is the ID chosen ahead by RunContainer, whose monitor is started
	// before the container exists.
	id string
	// startPending: RunContainer starts the container next (see
	// container.CreateOptions.StartPending).
	startPending bool
}

// ContainerCreateResponse is docker's create response.
type ContainerCreateResponse struct {
	ID       string   `json:"Id"`
	Warnings []string `json:"Warnings"`
}

// CreateContainer validates req completely and only then creates the
// container: a request refused for any reason leaves nothing behind (no
// record, layer, directory or volume). Errors are errdefs classes with
// Docker's messages.
func (e *Engine) CreateContainer(ctx context.Context, req ContainerCreateRequest) (ContainerCreateResponse, error) {
	c, err := e.createContainer(ctx, req)
	if err != nil {
		return ContainerCreateResponse{}, err
	}
	return ContainerCreateResponse{ID: c.ID, Warnings: append([]string{}, e.forwardWarnings(ctx, c)...)}, nil
}

func (e *Engine) createContainer(ctx context.Context, req ContainerCreateRequest) (*container.Container, error) {
	if err := validateCreate(&req, hostLimits()); err != nil {
		return nil, err
	}
	netSettings, err := e.resolveNetworking(ctx, &req)
	if err != nil {
		return nil, err
	}
	inherited, err := e.volumesFrom(ctx, req.HostConfig.VolumesFrom)
	if err != nil {
		return nil, err
	}
	c, err := e.Containers.Create(ctx, container.CreateOptions{
		ID: req.id, Name: req.Name, Config: req.Config, HostConfig: req.HostConfig, Inherited: inherited,
		StartPending: req.startPending, NetworkSettings: netSettings,
	})
	if err != nil {
		return nil, err
	}
	e.Containers.Emit(ctx, container.ContainerEvent(c, "create"))
	return c, nil
}

// volumesFrom resolves --volumes-from: each "container[:ro|:rw]" gives
// that container's volumes and binds, at the same destinations, read-only
// or writable as the suffix says, else as they were.
func (e *Engine) volumesFrom(ctx context.Context, specs []string) ([]container.MountSpec, error) {
	var out []container.MountSpec
	for _, spec := range specs {
		ref, mode, _ := parseVolumesFrom(spec) // checked by validateCreate
		src, err := e.Containers.Get(ctx, ref)
		if err != nil {
			return nil, err
		}
		for _, mi := range src.Mounts {
			m := container.MountSpec{Type: mi.Type, Target: mi.Destination, ReadOnly: !mi.RW, Propagation: mi.Propagation}
			switch mi.Type {
			case "volume":
				m.Source = mi.Name
				m.NoCopy = true // the volume has its data already
			case "bind":
				m.Source = mi.Source
			default:
				continue // tmpfs is the other container's own
			}
			switch mode {
			case "ro":
				m.ReadOnly = true
			case "rw":
				m.ReadOnly = false
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// parseVolumesFrom splits "container[:ro|:rw]".
func parseVolumesFrom(spec string) (ref, mode string, err error) {
	ref, mode, _ = strings.Cut(spec, ":")
	if ref == "" {
		return "", "", errdefs.InvalidArgument("invalid volumes-from specification %q: no container", spec)
	}
	switch mode {
	case "", "ro", "rw":
	case "z", "Z":
		mode = ""
	default:
		return "", "", errdefs.InvalidArgument("invalid mode: %s", mode)
	}
	return ref, mode, nil
}

// host are the facts of the host a request is judged against.
type host struct {
	cpus int
	// unavailableCPU is runtime.UnavailableCPU (nil in tests: not checked).
	unavailableCPU func(list string) (cpu int, online string, found, ok bool)
}

func hostLimits() host {
	return host{cpus: goruntime.NumCPU(), unavailableCPU: runtime.UnavailableCPU}
}

// minMemory is docker's smallest memory limit and reservation.
const minMemory = 6 << 20

// ulimitNames are the resources a ulimit may name.
var ulimitNames = map[string]bool{"as": true, "core": true, "cpu": true, "data": true, "fsize": true, "locks": true,
	"memlock": true, "msgqueue": true, "nice": true, "nofile": true, "nproc": true, "rss": true, "rtprio": true,
	"rttime": true, "sigpending": true, "stack": true}

// validateCreate checks everything of a create request that does not need
// the image, with the messages of Docker's daemon. It fills the defaults
// Docker fills (log driver, restart policy name).
func validateCreate(req *ContainerCreateRequest, h host) error {
	cfg, hc := &req.Config, &req.HostConfig
	if req.Name != "" && !validContainerName(strings.TrimPrefix(req.Name, "/")) {
		return errdefs.InvalidArgument("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", req.Name)
	}
	if p := req.Platform; p != "" && p != "linux" && !strings.HasPrefix(p, "linux/") {
		return errdefs.InvalidArgument("platform %q is not supported on this host: berth runs linux containers", p)
	}
	if cfg.Image == "" {
		return errdefs.InvalidArgument("config cannot be empty in order to create a container: no image")
	}
	for _, kv := range cfg.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			return errdefs.InvalidArgument("invalid environment variable: %s", kv)
		}
	}
	if cfg.WorkingDir != "" && !strings.HasPrefix(cfg.WorkingDir, "/") {
		return errdefs.InvalidArgument("the working directory '%s' is invalid, it needs to be an absolute path", cfg.WorkingDir)
	}
	if cfg.StopSignal != "" {
		if _, err := container.ParseSignal(cfg.StopSignal); err != nil {
			return errdefs.InvalidArgument("Invalid signal: %s", cfg.StopSignal)
		}
	}
	if cfg.StopTimeout != nil && *cfg.StopTimeout < -1 {
		return errdefs.InvalidArgument("invalid stop timeout %d: it must be -1 (wait forever) or more", *cfg.StopTimeout)
	}
	if err := validateHealthcheck(cfg.Healthcheck); err != nil {
		return err
	}
	if err := validateRestart(hc); err != nil {
		return err
	}
	if hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000 {
		return errdefs.InvalidArgument("Invalid value %d, range for oom score adj is [-1000, 1000]", hc.OomScoreAdj)
	}
	for _, set := range []struct {
		field string
		caps  []string
	}{{"CapAdd", hc.CapAdd}, {"CapDrop", hc.CapDrop}} {
		for _, c := range set.caps {
			if name, ok := runtime.CapabilityName(c); !ok {
				return errdefs.InvalidArgument("invalid %s: unknown capability: %q", set.field, name)
			}
		}
	}
	if err := validateResources(&hc.Resources, h); err != nil {
		return err
	}
	if hc.ShmSize < 0 {
		return errdefs.InvalidArgument("SHM size can not be less than 0")
	}
	if err := validateNetworking(req); err != nil {
		return err
	}
	if err := validateNamespaces(hc); err != nil {
		return err
	}
	if err := container.ValidateSecurityOpts(hc.SecurityOpt); err != nil {
		return err
	}
	if err := runtime.ValidateSysctls(hc.Sysctls, hc.NetworkMode == "host"); err != nil {
		return err
	}
	if err := validateLogConfig(&hc.LogConfig); err != nil {
		return err
	}
	return validateMounts(hc)
}

func validContainerName(name string) bool {
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || r != '_' && r != '.' && r != '-') {
			return false
		}
	}
	return name != ""
}

func validateHealthcheck(hc *CreateHealthConfig) error {
	if hc == nil {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Interval", hc.Interval}, {"Timeout", hc.Timeout}, {"StartPeriod", hc.StartPeriod}, {"StartInterval", hc.StartInterval}} {
		if d.v != 0 && d.v < time.Millisecond {
			return errdefs.InvalidArgument("%s in Healthcheck cannot be less than 1ms", d.name)
		}
	}
	if hc.Retries < 0 {
		return errdefs.InvalidArgument("Retries in Healthcheck cannot be negative")
	}
	return nil
}

func validateRestart(hc *CreateHostConfig) error {
	rp := &hc.RestartPolicy
	switch rp.Name {
	case "":
		rp.Name = "no"
	case "no", "always", "unless-stopped", "on-failure":
	default:
		return errdefs.InvalidArgument("invalid restart policy: unknown policy '%s'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'", rp.Name)
	}
	if rp.MaximumRetryCount < 0 {
		return errdefs.InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
	}
	if rp.MaximumRetryCount > 0 && rp.Name != "on-failure" {
		return errdefs.InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
	}
	if hc.AutoRemove && rp.Name != "no" {
		return errdefs.InvalidArgument("can't create 'AutoRemove' container with restart policy")
	}
	return nil
}

func validateResources(r *CreateResources, h host) error {
	if r.Memory < 0 || r.MemoryReservation < 0 || r.MemorySwap < -1 {
		return errdefs.InvalidArgument("invalid memory limits: Memory and MemoryReservation must be positive, MemorySwap positive or -1")
	}
	if r.Memory > 0 && r.Memory < minMemory {
		return errdefs.InvalidArgument("Minimum memory limit allowed is 6MB")
	}
	if r.MemorySwap > 0 && r.Memory == 0 {
		return errdefs.InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
	}
	if r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory {
		return errdefs.InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if r.MemoryReservation > 0 && r.MemoryReservation < minMemory {
		return errdefs.InvalidArgument("Minimum memory reservation allowed is 6MB")
	}
	if r.Memory > 0 && r.MemoryReservation > 0 && r.Memory < r.MemoryReservation {
		return errdefs.InvalidArgument("Minimum memory limit can not be less than memory reservation limit, see usage")
	}
	if r.NanoCPUs != 0 {
		if r.CPUPeriod != 0 {
			return errdefs.InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
		}
		if r.CPUQuota != 0 {
			return errdefs.InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
		}
		if r.NanoCPUs < 1e7 || r.NanoCPUs > int64(h.cpus)*1e9 {
			return errdefs.InvalidArgument("Range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", h.cpus, h.cpus)
		}
	}
	if r.CPUPeriod != 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000) {
		return errdefs.InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
	}
	if r.CPUQuota > 0 && r.CPUQuota < 1000 {
		return errdefs.InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
	}
	if r.CPUShares < 0 {
		return errdefs.InvalidArgument("invalid CPU shares (%d): value must be a positive integer", r.CPUShares)
	}
	if r.CpusetCpus != "" {
		if !validCPUList(r.CpusetCpus) {
			return errdefs.InvalidArgument("Invalid value %s for cpuset cpus: invalid format: %s", r.CpusetCpus, r.CpusetCpus)
		}
		if h.unavailableCPU != nil {
			if _, online, found, ok := h.unavailableCPU(r.CpusetCpus); ok && found {
				return errdefs.InvalidArgument("Requested CPUs are not available - requested %s, available: %s", r.CpusetCpus, online)
			}
		}
	}
	seen := map[string]bool{}
	for _, u := range r.Ulimits {
		if u == nil {
			continue
		}
		if !ulimitNames[u.Name] {
			return errdefs.InvalidArgument("invalid ulimit type: %s", u.Name)
		}
		if seen[u.Name] {
			return errdefs.InvalidArgument("ulimit %s is given twice", u.Name)
		}
		seen[u.Name] = true
		if u.Hard != -1 && u.Soft > u.Hard {
			return errdefs.InvalidArgument("ulimit soft limit must be less than or equal to hard limit: %d > %d", u.Soft, u.Hard)
		}
	}
	return nil
}

// validCPUList checks the syntax of a cpuset list such as "0-2,4".
func validCPUList(s string) bool {
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !digits(lo) || isRange && !digits(hi) {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// validateNamespaces accepts what berth implements of the ipc, pid and
// uts modes (the network mode is validateNetworking's).
func validateNamespaces(hc *CreateHostConfig) error {
	for _, ns := range []struct{ name, val string }{{"IpcMode", hc.IpcMode}, {"PidMode", hc.PidMode}, {"UTSMode", hc.UTSMode}} {
		if ns.val != "" && ns.val != "private" && !(ns.name == "IpcMode" && ns.val == "shareable") {
			return errdefs.InvalidArgument("%s %q is not supported yet", ns.name, ns.val)
		}
	}
	return nil
}

// logOpts are the json-file driver's options docker knows.
var logOpts = map[string]bool{"max-size": true, "max-file": true, "compress": true, "labels": true, "labels-regex": true,
	"env": true, "env-regex": true, "tag": true, "mode": true, "max-buffer-size": true}

func validateLogConfig(lc *CreateLogConfig) error {
	if lc.Type == "" {
		lc.Type = "json-file"
	}
	switch lc.Type {
	case "json-file":
		for k := range lc.Config {
			if !logOpts[k] {
				return errdefs.InvalidArgument("unknown log opt '%s' for json-file log driver", k)
			}
		}
		if _, err := container.LogWriterOptions(lc.Config); err != nil {
			return errdefs.InvalidArgument("failed to initialize logging driver: %v", err)
		}
	case "none":
		for k := range lc.Config {
			return errdefs.InvalidArgument("unknown log opt '%s' for none log driver", k)
		}
	default:
		return errdefs.InvalidArgument("logger: no log driver named '%s' is registered (berth has json-file and none)", lc.Type)
	}
	if lc.Config == nil {
		lc.Config = map[string]string{}
	}
	return nil
}

func validateMounts(hc *CreateHostConfig) error {
	for _, b := range hc.Binds {
		if _, err := container.ParseVolumeFlag(b); err != nil {
			return err
		}
	}
	for _, m := range hc.Mounts {
		if m.Target == "" {
			return errdefs.InvalidArgument("invalid mount config: field Target must not be empty")
		}
		if !strings.HasPrefix(m.Target, "/") {
			return errdefs.InvalidArgument("invalid mount config for type %q: invalid mount path: '%s' mount path must be absolute", m.Type, m.Target)
		}
		switch m.Type {
		case "bind":
			if m.Source == "" {
				return errdefs.InvalidArgument("invalid mount config for type \"bind\": field Source must not be empty")
			}
			if _, err := os.Stat(m.Source); err != nil {
				return errdefs.InvalidArgument("invalid mount config for type \"bind\": bind source path does not exist: %s", m.Source)
			}
		case "volume":
		case "tmpfs":
			if m.Source != "" {
				return errdefs.InvalidArgument("invalid mount config for type \"tmpfs\": field Source must not be specified")
			}
		default:
			return errdefs.InvalidArgument("mount type %q is not supported (bind, volume, tmpfs)", m.Type)
		}
	}
	for target := range hc.Tmpfs {
		if !strings.HasPrefix(target, "/") {
			return errdefs.InvalidArgument("invalid mount path: '%s' mount path must be absolute", target)
		}
	}
	for _, vf := range hc.VolumesFrom {
		if _, _, err := parseVolumesFrom(vf); err != nil {
			return err
		}
	}
	return nil
}
