package engine

import (
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry"
)

// applyConcurrency lets the command line's --max-concurrent-downloads and
// --max-concurrent-uploads (dockerd's names) win over the configuration
// file and its environment override.
func applyConcurrency(cfg Config, o *registry.Options) error {
	if cfg.MaxConcurrentDownloads < 0 {
		return errdefs.InvalidArgument("invalid max concurrent downloads: %d: must be a positive number", cfg.MaxConcurrentDownloads)
	}
	if cfg.MaxConcurrentUploads < 0 {
		return errdefs.InvalidArgument("invalid max concurrent uploads: %d: must be a positive number", cfg.MaxConcurrentUploads)
	}
	if cfg.MaxConcurrentDownloads > 0 {
		o.MaxConcurrentDownloads = cfg.MaxConcurrentDownloads
	}
	if cfg.MaxConcurrentUploads > 0 {
		o.MaxConcurrentUploads = cfg.MaxConcurrentUploads
	}
	return nil
}
