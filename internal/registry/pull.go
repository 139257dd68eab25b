package registry

// Pull: the manifest (an index resolved to one platform), the
// configuration, then every layer that is not stored yet, several at once
// (MaxConcurrentDownloads), each decompressed and extracted into its own
// snapshot while it downloads (overlay snapshots are independent
// directories, and every chain ID is known from the configuration before
// a byte of a layer arrives). image.Store.IngestLayer hashes the stream
// and commits blob and snapshot only when both digests match; everything
// runs under one lease, and the image is recorded last, so a failed or
// killed pull leaves nothing in `images` and the layers it finished are
// reused by the next pull.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// Progress is one line of a pull's or push's output, in docker's words:
// per layer (ID set) "Pulling fs layer", "Waiting", "Downloading" (with
// Current/Total), "Verifying Checksum", "Download complete", "Pull
// complete", "Already exists"; or a line of its own.
type Progress struct {
	ID      string
	Status  string
	Current int64
	Total   int64
	// Aux is push's final {Tag, Digest, Size}, as docker's stream has it.
	Aux *PushResult
}

// PullOptions tune a pull.
type PullOptions struct {
	Platform string // os/arch[/variant]; "" for the host's
	AllTags  bool
	Progress func(Progress) // may be nil; called from one goroutine at a time
}

// PullResult is one image a pull stored.
type PullResult struct {
	Reference string        // normalised: the tag or digest pulled
	Digest    digest.Digest // the registry's manifest (or index) digest
	ID        digest.Digest
	UpToDate  bool // the reference already named this image
}

// emitter serialises progress from the downloading goroutines.
type emitter struct {
	mu sync.Mutex
	fn func(Progress)
}

func (e *emitter) emit(p Progress) {
	if e.fn == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fn(p)
}

// ShortID is docker's 12-hex-digit layer ID of progress lines.
func ShortID(d digest.Digest) string {
	enc := d.Encoded()
	if len(enc) > 12 {
		return enc[:12]
	}
	return enc
}

// Pull stores the image ref names (every tag of its repository with
// AllTags) in st.
func (c *Client) Pull(ctx context.Context, st *image.Store, ref image.Reference, opts PullOptions) ([]PullResult, error) {
	em := &emitter{fn: opts.Progress}
	want, err := c.platform(opts.Platform)
	if err != nil {
		return nil, err
	}
	if !opts.AllTags {
		res, err := c.pullOne(ctx, st, ref, want, opts.Platform != "", em)
		if err != nil {
			return nil, err
		}
		return []PullResult{res}, nil
	}
	if ref.Tag != "" || ref.Digest != "" {
		return nil, errdefs.InvalidArgument("tag can't be used with --all-tags/-a")
	}
	tags, err := c.Tags(ctx, ref)
	if err != nil {
		return nil, err
	}
	var out []PullResult
	for _, t := range tags {
		r := ref
		r.Tag = t
		res, err := c.pullOne(ctx, st, r, want, opts.Platform != "", em)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

// pullOne pulls from the first endpoint (mirrors, then the origin) that
// serves the image.
func (c *Client) pullOne(ctx context.Context, st *image.Store, ref image.Reference, want image.Platform, explicit bool, em *emitter) (PullResult, error) {
	var errs []error
	for _, ep := range c.endpoints(ref.Domain) {
		res, err := c.pullFrom(ctx, st, ep, ref, want, explicit, em)
		if err == nil || !ep.mirror || ctx.Err() != nil {
			return res, err
		}
		errs = append(errs, err) // a mirror failed: the next, then the origin
	}
	return PullResult{}, errors.Join(errs...)
}

func (c *Client) pullFrom(ctx context.Context, st *image.Store, ep endpoint, ref image.Reference, want image.Platform, explicit bool, em *emitter) (PullResult, error) {
	r, err := c.open(ctx, ep, ref.Path, []string{"pull"})
	if err != nil {
		return PullResult{}, pullAccess(ref, err)
	}
	tagOrDigest := ref.Tag
	if ref.Digest != "" {
		tagOrDigest = ref.Digest.String()
	}
	em.emit(Progress{ID: tagOrDigest, Status: "Pulling from " + strings.TrimPrefix(ref.FamiliarName(), ref.Domain+"/")})
	top, err := r.manifest(ctx, tagOrDigest)
	if err != nil {
		return PullResult{}, pullAccess(ref, err)
	}
	doc := top
	var index []byte
	if isIndex(top.mediaType) {
		var idx image.Index
		if err := json.Unmarshal(top.raw, &idx); err != nil {
			return PullResult{}, errdefs.InvalidArgument("index %s@%s: %v", r.name(), top.digest, err)
		}
		d, ok := pickPlatform(idx.Manifests, want)
		if !ok {
			return PullResult{}, errdefs.NotFound("no matching manifest for %s in the manifest list entries (%s@%s)", platformString(want), r.name(), top.digest)
		}
		if doc, err = r.manifest(ctx, d.Digest.String()); err != nil {
			return PullResult{}, err
		}
		if isIndex(doc.mediaType) {
			return PullResult{}, errdefs.InvalidArgument("index %s@%s: entry %s is an index too; nested indexes are not supported", r.name(), top.digest, d.Digest)
		}
		index = top.raw
	}
	var m image.Manifest
	if err := json.Unmarshal(doc.raw, &m); err != nil {
		return PullResult{}, errdefs.InvalidArgument("manifest %s@%s: %v", r.name(), doc.digest, err)
	}
	switch m.Config.MediaType {
	case MediaTypeDockerConfig, image.MediaTypeImageConfig:
	default:
		return PullResult{}, errdefs.InvalidArgument("manifest %s@%s: unknown media type %q of its configuration: not a container image", r.name(), doc.digest, m.Config.MediaType)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return PullResult{}, errdefs.InvalidArgument("manifest %s@%s: config digest: %v", r.name(), doc.digest, err)
	}
	for _, l := range m.Layers {
		if ok, _ := layerMediaType(l.MediaType); !ok {
			return PullResult{}, errdefs.InvalidArgument("manifest %s@%s: layer %s has unknown media type %q", r.name(), doc.digest, l.Digest, l.MediaType)
		}
		if err := l.Digest.Validate(); err != nil {
			return PullResult{}, errdefs.InvalidArgument("manifest %s@%s: layer digest: %v", r.name(), doc.digest, err)
		}
	}
	cfgRaw, err := r.blobBytes(ctx, m.Config.Digest, m.Config.Size, maxConfigSize)
	if err != nil {
		return PullResult{}, err
	}
	var cfg image.Config
	if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
		return PullResult{}, errdefs.InvalidArgument("image configuration %s@%s: %v", r.name(), m.Config.Digest, err)
	}
	if explicit && (cfg.OS != want.OS || cfg.Architecture != want.Architecture) {
		return PullResult{}, errdefs.NotFound("image with reference %s was found but does not match the specified platform: wanted %s, actual: %s/%s", ref.Familiar(), platformString(want), cfg.OS, cfg.Architecture)
	}
	if !explicit && cfg.OS != "" && cfg.OS != want.OS {
		return PullResult{}, errdefs.InvalidArgument("image operating system %q cannot be used on this platform (%s@%s)", cfg.OS, r.name(), doc.digest)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return PullResult{}, errdefs.InvalidArgument("manifest %s@%s lists %d layers, its configuration %d", r.name(), doc.digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}

	res := PullResult{Reference: ref.String(), Digest: top.digest, ID: digest.FromBytes(cfgRaw)}
	if ref.Tag != "" {
		if old, err := st.Resolve(ctx, ref.String()); err == nil && old.ID == res.ID {
			res.UpToDate = true
		}
	}
	err = st.WithLease(ctx, func(ctx context.Context) error {
		layers, err := c.fetchLayers(ctx, st, r, m.Layers, cfg.RootFS.DiffIDs, em)
		if err != nil {
			return err
		}
		o := image.CreateOptions{Config: cfgRaw, Manifest: doc.raw, Layers: layers, Index: index, RepoDigests: []string{ref.Name() + "@" + top.digest.String()}}
		if ref.Digest == "" {
			o.Ref = ref.String()
		}
		_, err = st.CreateImage(ctx, o)
		return err
	})
	if err != nil {
		return PullResult{}, err
	}
	em.emit(Progress{Status: "Digest: " + top.digest.String()})
	if res.UpToDate {
		em.emit(Progress{Status: "Status: Image is up to date for " + ref.Familiar()})
	} else {
		em.emit(Progress{Status: "Status: Downloaded newer image for " + ref.Familiar()})
	}
	return res, nil
}

// pullAccess words a refused repository as docker does.
func pullAccess(ref image.Reference, err error) error {
	var he *httpError
	if !errors.As(err, &he) {
		return err
	}
	switch he.class {
	case errdefs.ErrForbidden:
		return errdefs.NotFound("pull access denied for %s, repository does not exist or may require 'docker login': %s (%s)", ref.FamiliarName(), he.detail, he.what)
	case errdefs.ErrNotFound:
		if strings.HasPrefix(he.what, "manifest ") {
			return errdefs.NotFound("manifest for %s not found: %s", ref.Familiar(), he.detail)
		}
	}
	return err
}

// retainFailed is how long the layers of a failed pull are kept for the
// next attempt.
const retainFailed = time.Hour

// fetchLayers stores every layer of a manifest under ctx's lease, those
// not yet stored downloaded and extracted at once, several at a time.
func (c *Client) fetchLayers(ctx context.Context, st *image.Store, r *repo, descs []image.Descriptor, diffIDs []digest.Digest, em *emitter) ([]image.Layer, error) {
	n := len(descs)
	layers := make([]image.Layer, n)
	srcs := make([]image.LayerSource, n)
	var parent digest.Digest
	var todo []int
	for i, d := range descs {
		srcs[i] = image.LayerSource{Parent: parent, Blob: d.Digest, Size: d.Size, DiffID: diffIDs[i], MediaType: d.MediaType}
		parent = image.ChainOf(parent, diffIDs[i])
		l, ok, err := st.StoredLayer(ctx, srcs[i])
		if err != nil {
			return nil, err
		}
		if ok {
			layers[i] = l
			em.emit(Progress{ID: ShortID(d.Digest), Status: "Already exists"})
			continue
		}
		todo = append(todo, i)
		em.emit(Progress{ID: ShortID(d.Digest), Status: "Pulling fs layer"})
	}
	if len(todo) == 0 {
		return layers, nil
	}
	for k, i := range todo {
		if k >= c.opts.MaxConcurrentDownloads {
			em.emit(Progress{ID: ShortID(descs[i].Digest), Status: "Waiting"})
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, c.opts.MaxConcurrentDownloads)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, i := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// The slot is a download's: it is given back once the blob
			// is read, while the layer's last entries, its syncfs and
			// its commit still run, so that the next download starts.
			release := sync.OnceFunc(func() { <-sem })
			defer release()
			l, err := c.fetchLayer(ctx, st, r, descs[i], srcs[i], em, release)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel(err)
				return
			}
			layers[i] = l
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		// What was stored stays for the next attempt.
		var done []image.Layer
		for _, i := range todo {
			if layers[i].ChainID != "" {
				done = append(done, layers[i])
			}
		}
		if err := st.RetainLayers(context.WithoutCancel(ctx), done, retainFailed); err != nil {
			return nil, errors.Join(firstErr, err)
		}
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return layers, nil
}

func (c *Client) fetchLayer(ctx context.Context, st *image.Store, r *repo, d image.Descriptor, src image.LayerSource, em *emitter, downloaded func()) (image.Layer, error) {
	id := ShortID(d.Digest)
	br, err := r.openBlob(ctx, d.Digest, d.Size, d.URLs)
	if err != nil {
		return image.Layer{}, err
	}
	br.onEOF = downloaded
	defer br.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // progress at most ten times a second, off the data path
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var last int64 = -1
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if cur := br.n.Load(); cur != last {
					last = cur
					em.emit(Progress{ID: id, Status: "Downloading", Current: cur, Total: d.Size})
				}
			}
		}
	}()
	l, err := st.IngestLayer(ctx, br, src)
	close(stop)
	<-done
	if err != nil {
		if br.err != nil {
			return image.Layer{}, br.err
		}
		if ce := context.Cause(ctx); ce != nil && ctx.Err() != nil {
			return image.Layer{}, ce
		}
		return image.Layer{}, fmt.Errorf("layer %s@%s: %w", r.name(), d.Digest, err)
	}
	em.emit(Progress{ID: id, Status: "Downloading", Current: d.Size, Total: d.Size})
	em.emit(Progress{ID: id, Status: "Verifying Checksum"})
	em.emit(Progress{ID: id, Status: "Download complete"})
	em.emit(Progress{ID: id, Status: "Pull complete"})
	return l, nil
}

// platform parses os/arch[/variant] ("" for the host's).
func (c *Client) platform(s string) (image.Platform, error) {
	if s == "" {
		p := image.Platform{OS: goruntime.GOOS, Architecture: goruntime.GOARCH}
		if p.Architecture == "arm" {
			p.Variant = "v7"
		}
		return p, nil
	}
	parts := strings.Split(strings.ToLower(s), "/")
	var p image.Platform
	switch len(parts) {
	case 1:
		p = image.Platform{OS: "linux", Architecture: parts[0]}
	case 2:
		p = image.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = image.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return p, errdefs.InvalidArgument("invalid platform %q: expected os/arch[/variant]", s)
	}
	for _, x := range parts {
		if x == "" {
			return p, errdefs.InvalidArgument("invalid platform %q: expected os/arch[/variant]", s)
		}
	}
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	}
	if p.Architecture == "arm64" && p.Variant == "v8" {
		p.Variant = ""
	}
	return p, nil
}

func platformString(p image.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// pickPlatform chooses the index entry for want: same OS and
// architecture, and the variant asked for (any when none is).
func pickPlatform(ds []image.Descriptor, want image.Platform) (image.Descriptor, bool) {
	var loose *image.Descriptor
	for i, d := range ds {
		p := d.Platform
		if p == nil || p.OS != want.OS || p.Architecture != want.Architecture {
			continue
		}
		v := p.Variant
		if p.Architecture == "arm64" && v == "v8" {
			v = ""
		}
		if v == want.Variant {
			return d, true
		}
		if want.Variant == "" && loose == nil {
			loose = &ds[i]
		}
	}
	if loose != nil {
		return *loose, true
	}
	return image.Descriptor{}, false
}

// Tags lists the tags of ref's repository (all pages).
func (c *Client) Tags(ctx context.Context, ref image.Reference) ([]string, error) {
	var errs []error
	for _, ep := range c.endpoints(ref.Domain) {
		tags, err := c.tagsFrom(ctx, ep, ref)
		if err == nil || !ep.mirror {
			return tags, pullAccess(ref, err)
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (c *Client) tagsFrom(ctx context.Context, ep endpoint, ref image.Reference) ([]string, error) {
	r, err := c.open(ctx, ep, ref.Path, []string{"pull"})
	if err != nil {
		return nil, err
	}
	next := r.url("tags/list")
	var out []string
	for pages := 0; next != "" && pages < 1000; pages++ {
		res, err := r.do(ctx, "GET", next, nil, nil, "tags of "+r.name())
		if err != nil {
			return nil, err
		}
		var doc struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(res.Body, maxManifestSize)).Decode(&doc)
		res.Body.Close()
		if err != nil {
			return nil, errdefs.InvalidArgument("tags of %s: %v", r.name(), err)
		}
		out = append(out, doc.Tags...)
		next = nextLink(res.Header.Get("Link"), res.Request.URL)
	}
	return out, nil
}
