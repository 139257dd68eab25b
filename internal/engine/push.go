package engine

import (
	"context"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/registry"
)

// ImagePushRequest is POST /images/{name}/push (`docker push`).
type ImagePushRequest struct {
	Reference    string // NAME[:TAG]
	AllTags      bool
	RegistryAuth *AuthConfig // nil: the user's docker configuration
	Progress     func(JSONMessage)
}

// ImagePushResult is docker's aux message per pushed tag.
type ImagePushResult struct {
	Pushed []PushedTag
}

// PushedTag is one tag pushed: its manifest digest and size.
type PushedTag struct {
	Tag    string
	Digest string
	Size   int
}

// ImagePush sends the image (or every tag of the repository) to its
// registry as stored: same blobs, same manifest, same digests; a push
// event per tag.
func (e *Engine) ImagePush(ctx context.Context, req ImagePushRequest) (ImagePushResult, error) {
	ref, err := image.ParseNormalized(req.Reference)
	if err != nil {
		return ImagePushResult{}, err
	}
	if !req.AllTags && ref.NameOnly() {
		ref.Tag = "latest"
	}
	c, err := registryClient(e.Config, req.RegistryAuth)
	if err != nil {
		return ImagePushResult{}, err
	}
	start := map[string]int64{}
	opts := registry.PushOptions{AllTags: req.AllTags}
	if req.Progress != nil {
		opts.Progress = func(p registry.Progress) { req.Progress(toJSONMessage(p, start)) }
	}
	res, err := c.Push(ctx, e.Images, ref, opts)
	var out ImagePushResult
	for _, r := range res {
		out.Pushed = append(out.Pushed, PushedTag{Tag: r.Tag, Digest: r.Digest, Size: r.Size})
		t := ref
		t.Tag = r.Tag
		if img, ierr := e.Images.Resolve(ctx, t.String()); ierr == nil {
			e.Emit(ctx, e.refEvent("push", img.ID, t.String()))
		}
	}
	return out, err
}
