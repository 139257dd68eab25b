// Package engine wires berth's services from one Config. The CLI and the
// API server both drive containers, images and volumes through an Engine.
package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/volume"
)

// Default state locations, like docker's /var/lib/docker and /run/docker.
const (
	DefaultRoot    = "/var/lib/berth"
	DefaultRunRoot = "/run/berth"
)

// Config locates berth's state and picks its runtime.
type Config struct {
	Root    string
	RunRoot string
	Runtime string // OCI runtime: runtime.DefaultName unless set
	// Self is the berth binary monitors run from; os.Executable() if empty.
	Self  string
	Debug bool
	// RegistryConfig is berth's daemon.json (insecure registries,
	// mirrors, concurrency); "" for /etc/berth/daemon.json.
	RegistryConfig string
	// MaxConcurrentDownloads and MaxConcurrentUploads override the
	// configuration's (dockerd's flags of those names); 0 keeps it.
	MaxConcurrentDownloads int
	MaxConcurrentUploads   int
	// DefaultBindIP overrides the configuration's "ip" (dockerd's --ip):
	// the default bridge's host address for ports published without one.
	DefaultBindIP string
}

// Engine is the set of services over one root.
type Engine struct {
	Config     Config
	Meta       *metadata.Store
	Content    *content.Store
	Snapshots  *snapshot.Snapshotter
	Images     *image.Store
	Volumes    *volume.Store
	Containers *container.Service
	Networks   *network.Service
	// Attacher connects containers to networks (also the network sweep's).
	Attacher *network.Attacher
	// forwardCheck gives the warnings for a bridge network that another
	// firewall blocks (fwwarn.go); nil: none.
	forwardCheck func(*network.Network) []string
}

// New opens (creating when needed) the state under cfg.Root and cfg.RunRoot.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Root == "" {
		cfg.Root = DefaultRoot
	}
	if cfg.RunRoot == "" {
		cfg.RunRoot = DefaultRunRoot
	}
	if cfg.Runtime == "" {
		cfg.Runtime = runtime.DefaultName
	}
	var err error
	if cfg.Root, err = filepath.Abs(cfg.Root); err != nil {
		return nil, err
	}
	if cfg.RunRoot, err = filepath.Abs(cfg.RunRoot); err != nil {
		return nil, err
	}
	if cfg.Self == "" {
		if cfg.Self, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("locate the berth binary: %w", err)
		}
	}
	for _, d := range []string{cfg.Root, cfg.RunRoot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("create state directory: %w", err)
		}
	}
	meta, err := metadata.Open(ctx, cfg.Root)
	if err != nil {
		return nil, err
	}
	cs, err := content.New(filepath.Join(cfg.Root, "content"))
	if err != nil {
		return nil, err
	}
	snaps, err := snapshot.New(cfg.Root)
	if err != nil {
		return nil, err
	}
	// The image and volume stores ask the container package which
	// containers use an image or a volume.
	users := container.Users{}
	images := image.NewStore(meta, cs, snaps, users)
	vols := volume.NewStore(cfg.Root, meta, users)
	nets := network.NewService(meta, cfg.Root)
	pub := publishConfig(cfg)
	nets.SetPublishConfig(pub)
	att := network.Default(nets, cfg.RunRoot)
	ctrs := container.NewService(container.Options{
		Root: cfg.Root, RunRoot: cfg.RunRoot, Runtime: cfg.Runtime, Self: StartPathBinary(cfg.Self), Debug: cfg.Debug,
		Network: att, MonitorArgs: network.MonitorArgs(pub),
	}, meta, images, vols)
	att.SetEvents(ctrs)
	return &Engine{Config: cfg, Meta: meta, Content: cs, Snapshots: snaps, Images: images, Volumes: vols, Containers: ctrs,
		Networks: nets, Attacher: att, forwardCheck: nets.ForwardWarnings}, nil
}
