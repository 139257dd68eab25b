package image

import (
	"context"
	"encoding/json"
	"io"
	goruntime "runtime"
	"time"

	"github.com/berth-dev/berth/internal/digest"
)

// ImportOptions are the flags of `berth import`.
type ImportOptions struct {
	Reference string   // optional REPOSITORY[:TAG]
	Changes   []string // --change
	Message   string   // --message
	Source    string   // shown in the history comment: a file name or "-"
	Platform  string
}

// Import creates a single-layer image from a filesystem tarball (plain,
// gzip or zstd), like `docker import`.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*Image, error) {
	var tagRef string
	if opts.Reference != "" {
		tagged, err := ParseTag(opts.Reference)
		if err != nil {
			return nil, err
		}
		tagRef = tagged.String()
	}
	var spec ContainerSpec
	if err := ApplyChanges(&spec, opts.Changes); err != nil {
		return nil, err
	}
	var img *Image
	err := s.WithLease(ctx, func(ctx context.Context) error {
		l, err := s.IngestLayer(ctx, r, LayerSource{})
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		comment := opts.Message
		if comment == "" {
			comment = "Imported from " + opts.Source
		}
		cfg := Config{
			Created:      &now,
			Architecture: goruntime.GOARCH,
			OS:           "linux",
			Config:       spec,
			RootFS:       RootFS{Type: "layers", DiffIDs: []digest.Digest{l.DiffID}},
			History:      []History{{Created: &now, Comment: comment}},
			Comment:      opts.Message,
		}
		img, err = s.Create(ctx, &cfg, []Layer{l}, tagRef, "")
		return err
	})
	return img, err
}

// AddLayer stores an image layer tar (plain, gzip or zstd) as it comes and
// extracts it once into a snapshot. The layer is the first of its image;
// stacked layers use AddLayerOn.
func (s *Store) AddLayer(ctx context.Context, r io.Reader) (Layer, error) {
	return s.AddLayerOn(ctx, "", r)
}

// AddLayerOn stores a layer whose parent chain is parent ("" for a base
// layer). Callers that go on to create an image from it hold a lease
// across both (WithLease).
func (s *Store) AddLayerOn(ctx context.Context, parent digest.Digest, r io.Reader) (Layer, error) {
	return s.IngestLayer(ctx, r, LayerSource{Parent: parent})
}

// Create stores cfg and an OCI manifest for layers, records the image and,
// when ref is set, tags it. The layers must be stored (IngestLayer).
func (s *Store) Create(ctx context.Context, cfg *Config, layers []Layer, ref string, parent digest.Digest) (*Image, error) {
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return s.CreateImage(ctx, CreateOptions{Config: rawCfg, Layers: layers, Ref: ref, Parent: parent})
}
