package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
)

// ParseVolumeFlag reads one `-v` value: "/host:/ctr[:opts]", "name:/ctr[:opts]"
// or "/ctr" (an anonymous volume).
func ParseVolumeFlag(v string) (MountSpec, error) {
	parts := strings.Split(v, ":")
	var m MountSpec
	switch len(parts) {
	case 1:
		m = MountSpec{Type: "volume", Target: parts[0], Anonymous: true}
	case 2, 3:
		m = MountSpec{Source: parts[0], Target: parts[1], Type: "volume"}
		if strings.HasPrefix(parts[0], "/") || strings.HasPrefix(parts[0], ".") {
			m.Type = "bind"
		}
		if len(parts) == 3 {
			for _, o := range strings.Split(parts[2], ",") {
				switch o {
				case "ro":
					m.ReadOnly = true
				case "rw", "z", "Z", "":
				case "nocopy":
					m.NoCopy = true
				case "private", "rprivate", "shared", "rshared", "slave", "rslave":
					m.Propagation = o
				default:
					return m, errdefs.InvalidArgument("invalid mode %q in volume specification %q", o, v)
				}
			}
		}
	default:
		return m, errdefs.InvalidArgument("invalid volume specification: %q", v)
	}
	if m.Source == "" && !m.Anonymous {
		return m, errdefs.InvalidArgument("invalid volume specification: %q: empty source", v)
	}
	if !filepath.IsAbs(m.Target) {
		return m, errdefs.InvalidArgument("invalid volume specification: %q: mount path must be absolute", v)
	}
	if m.Type == "bind" && !filepath.IsAbs(m.Source) {
		abs, err := filepath.Abs(m.Source)
		if err != nil {
			return m, err
		}
		m.Source = abs
	}
	return m, nil
}

// ParseMountFlag reads one `--mount type=...,source=...,target=...` value.
func ParseMountFlag(v string) (MountSpec, error) {
	m := MountSpec{Type: "volume"}
	for _, field := range strings.Split(v, ",") {
		k, val, hasVal := strings.Cut(field, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = val
		case "source", "src":
			m.Source = val
		case "target", "destination", "dst":
			m.Target = val
		case "readonly", "ro":
			m.ReadOnly = !hasVal || val == "true" || val == "1"
		case "bind-propagation":
			m.Propagation = val
		case "volume-nocopy":
			m.NoCopy = !hasVal || val == "true" || val == "1"
		case "tmpfs-size":
			n, err := ParseBytes(val)
			if err != nil {
				return m, errdefs.InvalidArgument("--mount %q: tmpfs-size: %v", v, err)
			}
			m.TmpfsSize = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(val, 8, 32)
			if err != nil {
				return m, errdefs.InvalidArgument("--mount %q: tmpfs-mode %q is not an octal mode", v, val)
			}
			m.TmpfsMode = uint32(n)
		case "consistency", "bind-nonrecursive", "volume-driver", "volume-label", "volume-opt":
		default:
			return m, errdefs.InvalidArgument("--mount %q: unexpected key %q", v, k)
		}
	}
	switch m.Type {
	case "bind":
		if m.Source == "" {
			return m, errdefs.InvalidArgument("invalid mount config for type \"bind\": field Source must not be empty")
		}
		// Whether the source exists is the engine's to judge (docker's daemon does).
	case "volume":
		m.Anonymous = m.Source == ""
	case "tmpfs":
		if m.Source != "" {
			return m, errdefs.InvalidArgument("invalid mount config for type \"tmpfs\": source must not be specified")
		}
	default:
		return m, errdefs.InvalidArgument("--mount %q: mount type %q is not supported (bind, volume, tmpfs)", v, m.Type)
	}
	if m.Target == "" {
		return m, errdefs.InvalidArgument("invalid mount config: field Target must not be empty")
	}
	if !filepath.IsAbs(m.Target) {
		return m, errdefs.InvalidArgument("invalid mount config: mount path %q must be absolute", m.Target)
	}
	return m, nil
}

// ParseBytes reads sizes like docker's: "64m", "1g", "512k", "100b", "1024".
func ParseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	t = strings.TrimSuffix(t, "b")
	t = strings.TrimSuffix(t, "i")
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "m"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "g"):
		mult, t = 1<<30, t[:len(t)-1]
	case strings.HasSuffix(t, "t"):
		mult, t = 1<<40, t[:len(t)-1]
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size: %q", s)
	}
	return int64(f * float64(mult)), nil
}

// planMounts resolves the container's -v, --mount and --tmpfs requests and
// the image's VOLUMEs into inspect's Mounts, creating named and anonymous
// volumes. Later requests for the same target replace earlier ones; a user
// mount replaces an image VOLUME.
func (s *Service) planMounts(c *Container, imageVolumes map[string]struct{}, inherited []MountSpec) ([]MountInfo, error) {
	hc := &c.HostConfig
	byTarget := map[string]MountSpec{}
	var order []string
	add := func(m MountSpec) {
		m.Target = filepath.Clean(m.Target)
		if _, ok := byTarget[m.Target]; !ok {
			order = append(order, m.Target)
		}
		byTarget[m.Target] = m
	}
	vols := make([]string, 0, len(imageVolumes))
	for v := range imageVolumes {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	for _, v := range vols {
		// An image's VOLUME is a path in the container: a relative one
		// is taken from its root, as docker resolves it there.
		add(MountSpec{Type: "volume", Target: filepath.Join("/", v), Anonymous: true})
	}
	for _, m := range inherited {
		add(m)
	}
	for _, b := range hc.Binds {
		m, err := ParseVolumeFlag(b)
		if err != nil {
			return nil, err
		}
		add(m)
	}
	for _, m := range hc.Mounts {
		add(m)
	}
	for target, opts := range hc.Tmpfs {
		add(MountSpec{Type: "tmpfs", Target: target, Source: opts})
	}
	var out []MountInfo
	for _, target := range order {
		m := byTarget[target]
		if target == "/" {
			return nil, errdefs.InvalidArgument("invalid mount target \"/\": the root filesystem cannot be a mount")
		}
		mi := MountInfo{Type: m.Type, Destination: target, RW: !m.ReadOnly, Propagation: m.Propagation}
		if mi.RW {
			mi.Mode = ""
		} else {
			mi.Mode = "ro"
		}
		switch m.Type {
		case "bind":
			if _, err := os.Stat(m.Source); err != nil {
				// -v creates a missing host directory, like docker.
				if err := os.MkdirAll(m.Source, 0o755); err != nil {
					return nil, errdefs.InvalidArgument("bind source %s: %v", m.Source, err)
				}
			}
			mi.Source = m.Source
			if mi.Propagation == "" {
				mi.Propagation = "rprivate"
			}
		case "volume":
			name := m.Source
			if m.Anonymous {
				b := make([]byte, 32)
				rand.Read(b)
				name = hex.EncodeToString(b)
			}
			if s.volumes == nil {
				return nil, errdefs.InvalidArgument("volumes are not available")
			}
			path, _, err := s.volumes.Ensure(context.Background(), name, m.Anonymous)
			if err != nil {
				return nil, err
			}
			mi.Name, mi.Source, mi.Driver = name, path, "local"
			if m.NoCopy {
				c.Internal.NoCopyVolumes = append(c.Internal.NoCopyVolumes, name)
			}
			if m.Anonymous {
				c.Internal.AnonymousVolumes = append(c.Internal.AnonymousVolumes, name)
			}
		case "tmpfs":
			opts := m.Source // --tmpfs options string
			if m.TmpfsSize > 0 {
				opts = strings.TrimPrefix(opts+",size="+strconv.FormatInt(m.TmpfsSize, 10), ",")
			}
			if m.TmpfsMode != 0 {
				opts = strings.TrimPrefix(opts+",mode="+strconv.FormatUint(uint64(m.TmpfsMode), 8), ",")
			}
			if m.ReadOnly {
				opts = strings.TrimPrefix(opts+",ro", ",")
			}
			mi.Source = ""
			mi.Mode = opts
		}
		out = append(out, mi)
	}
	return out, nil
}

// specMounts turns inspect's Mounts into runtime mounts.
func specMounts(c *Container) []runtime.Mount {
	var out []runtime.Mount
	for _, mi := range c.Mounts {
		switch mi.Type {
		case "bind", "volume":
			opts := []string{"rbind"}
			prop := mi.Propagation
			if prop == "" {
				prop = "rprivate"
			}
			opts = append(opts, prop)
			if !mi.RW {
				opts = append(opts, "ro")
			}
			out = append(out, runtime.Mount{Type: "bind", Source: mi.Source, Destination: mi.Destination, Options: opts})
		case "tmpfs":
			opts := []string{"nosuid", "nodev", "noexec"}
			for _, o := range strings.Split(mi.Mode, ",") {
				if o == "" {
					continue
				}
				switch o {
				case "exec":
					opts = removeOpt(opts, "noexec")
				case "suid":
					opts = removeOpt(opts, "nosuid")
				case "dev":
					opts = removeOpt(opts, "nodev")
				default:
					opts = append(opts, o)
				}
			}
			out = append(out, runtime.Mount{Type: "tmpfs", Source: "tmpfs", Destination: mi.Destination, Options: opts})
		}
	}
	return out
}

func removeOpt(opts []string, o string) []string {
	out := opts[:0]
	for _, x := range opts {
		if x != o {
			out = append(out, x)
		}
	}
	return out
}
