package registry

// Push sends an image as it is stored: its compressed blobs and its
// manifest byte for byte, so the registry gets the digests it was pulled
// (or loaded) with. A blob the registry has is skipped (HEAD); one the
// image is known to have come from another repository of the same
// registry is mounted from there; foreign layers are not pushed unless the
// registry is listed in allow-nondistributable-artifacts (dockerd's rule).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// PushOptions tune a push.
type PushOptions struct {
	AllTags  bool
	Progress func(Progress)
}

// PushResult is docker's aux message of a pushed tag.
type PushResult struct {
	Tag    string `json:"Tag"`
	Digest string `json:"Digest"`
	Size   int    `json:"Size"`
}

// Push sends the image ref names (every tag of its repository with
// AllTags) to its registry.
func (c *Client) Push(ctx context.Context, st *image.Store, ref image.Reference, opts PushOptions) ([]PushResult, error) {
	em := &emitter{fn: opts.Progress}
	if ref.Digest != "" {
		return nil, errdefs.InvalidArgument("cannot push a digest reference: %s", ref.Familiar())
	}
	var tags []string
	if opts.AllTags {
		if ref.Tag != "" {
			return nil, errdefs.InvalidArgument("tag can't be used with --all-tags/-a")
		}
		imgs, err := st.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, img := range imgs {
			for _, t := range img.RepoTags {
				if r, err := image.ParseNormalized(t); err == nil && r.Name() == ref.Name() && r.Tag != "" {
					tags = append(tags, r.Tag)
				}
			}
		}
		sort.Strings(tags)
		if len(tags) == 0 {
			return nil, errdefs.NotFound("An image does not exist locally with the tag: %s", ref.FamiliarName())
		}
	} else {
		if ref.Tag == "" {
			ref.Tag = "latest"
		}
		tags = []string{ref.Tag}
	}
	em.emit(Progress{Status: "The push refers to repository [" + ref.Name() + "]"})
	var out []PushResult
	for _, t := range tags {
		r := ref
		r.Tag = t
		res, err := c.pushOne(ctx, st, r, em)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

func (c *Client) pushOne(ctx context.Context, st *image.Store, ref image.Reference, em *emitter) (PushResult, error) {
	img, err := st.Resolve(ctx, ref.String())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return PushResult{}, errdefs.NotFound("An image does not exist locally with the tag: %s", ref.FamiliarName())
		}
		return PushResult{}, err
	}
	manifest, mediaType, err := st.PushManifest(&img.Record)
	if err != nil {
		return PushResult{}, err
	}
	cfgRaw, err := st.RawConfig(img.ID)
	if err != nil {
		return PushResult{}, err
	}
	// Repositories of the same registry the image came from: mount
	// sources for its blobs.
	var from []string
	for _, rd := range img.RepoDigests {
		if r, err := image.ParseNormalized(rd); err == nil && r.Domain == ref.Domain && r.Path != ref.Path {
			from = append(from, r.Path)
		}
	}
	var extra []string
	for _, f := range from {
		extra = append(extra, "repository:"+f+":pull")
	}
	ep := endpoint{host: apiHost(ref.Domain), origin: ref.Domain}
	r, err := c.open(ctx, ep, ref.Path, []string{"pull", "push"}, extra...)
	if err != nil {
		return PushResult{}, pushAccess(ref, r, err)
	}
	layers := img.Layers
	// docker lists the top layer first.
	for i := len(layers) - 1; i >= 0; i-- {
		em.emit(Progress{ID: ShortID(layers[i].DiffID), Status: "Preparing"})
	}
	sem := make(chan struct{}, c.opts.MaxConcurrentUploads)
	var wg sync.WaitGroup
	errs := make([]error, len(layers))
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := len(layers) - 1; i >= 0; i-- {
		l := layers[i]
		id := ShortID(l.DiffID)
		if _, foreign := layerMediaType(l.MediaType); foreign && !c.opts.allowNondistributable(ref.Domain) {
			em.emit(Progress{ID: id, Status: "Skipped foreign layer"})
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx2.Done():
		}
		if ctx2.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int, l image.Layer) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.pushLayer(ctx2, st, r, l, id, from, em); err != nil {
				errs[i] = err
				cancel()
			}
		}(i, l)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return PushResult{}, pushAccess(ref, r, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return PushResult{}, err
	}
	cfgDigest := digest.FromBytes(cfgRaw)
	if _, err := r.uploadBlob(ctx, cfgDigest, int64(len(cfgRaw)), func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(string(cfgRaw))), nil
	}, nil); err != nil {
		return PushResult{}, pushAccess(ref, r, err)
	}
	mdigest := digest.FromBytes(manifest)
	res, err := r.do(ctx, http.MethodPut, r.url("manifests/"+ref.Tag), http.Header{"Content-Type": {mediaType}}, func() (io.Reader, int64) {
		return strings.NewReader(string(manifest)), int64(len(manifest))
	}, fmt.Sprintf("manifest %s:%s (%s)", r.name(), ref.Tag, mdigest))
	if err != nil {
		return PushResult{}, pushAccess(ref, r, err)
	}
	res.Body.Close()
	if got := res.Header.Get("Docker-Content-Digest"); got != "" && got != mdigest.String() {
		return PushResult{}, errdefs.InvalidArgument("manifest %s:%s: the registry stored digest %s, berth sent %s", r.name(), ref.Tag, got, mdigest)
	}
	out := PushResult{Tag: ref.Tag, Digest: mdigest.String(), Size: len(manifest)}
	if err := st.AddRepoDigest(ctx, img.ID, ref.Name()+"@"+mdigest.String()); err != nil {
		return PushResult{}, err
	}
	em.emit(Progress{Status: fmt.Sprintf("%s: digest: %s size: %d", ref.Tag, mdigest, len(manifest))})
	em.emit(Progress{Aux: &out})
	return out, nil
}

// pushAccess words a refused push as docker does: "no basic auth
// credentials" when a Basic-auth registry got none (not logged in),
// else docker's "denied" line.
func pushAccess(ref image.Reference, r *repo, err error) error {
	var he *httpError
	if r != nil && r.anonBasic && errors.As(err, &he) && he.code == http.StatusUnauthorized {
		return errdefs.Forbidden("no basic auth credentials")
	}
	if errors.Is(err, errdefs.ErrForbidden) && !strings.Contains(err.Error(), "insecure-registries") {
		return errdefs.Forbidden("denied: requested access to the resource is denied (%s): %v", ref.Name(), err)
	}
	return err
}

func (c *Client) pushLayer(ctx context.Context, st *image.Store, r *repo, l image.Layer, id string, from []string, em *emitter) error {
	var sent atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if cur := sent.Load(); cur != last {
					last = cur
					em.emit(Progress{ID: id, Status: "Pushing", Current: cur, Total: l.BlobSize})
				}
			}
		}
	}()
	how, err := r.uploadBlob(ctx, l.Blob, l.BlobSize, func() (io.ReadCloser, error) {
		sent.Store(0)
		f, err := st.Content().Open(l.Blob)
		if err != nil {
			return nil, err
		}
		return &countingReader{ReadCloser: f, n: &sent}, nil
	}, from)
	close(stop)
	<-done
	if err != nil {
		return err
	}
	switch {
	case how == "exists":
		em.emit(Progress{ID: id, Status: "Layer already exists"})
	case strings.HasPrefix(how, "mounted:"):
		em.emit(Progress{ID: id, Status: "Mounted from " + strings.TrimPrefix(how, "mounted:")})
	default:
		em.emit(Progress{ID: id, Status: "Pushing", Current: l.BlobSize, Total: l.BlobSize})
		em.emit(Progress{ID: id, Status: "Pushed"})
	}
	return nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// uploadBlob makes blob d present in the repository: "exists" when it
// was, "mounted:<repo>" when mounted from another repository, "pushed"
// when sent (monolithically: POST for a session, PUT of the bytes).
func (r *repo) uploadBlob(ctx context.Context, d digest.Digest, size int64, open func() (io.ReadCloser, error), from []string) (string, error) {
	what := fmt.Sprintf("blob %s@%s", r.name(), d)
	res, err := r.do(ctx, http.MethodHead, r.url("blobs/"+d.String()), nil, nil, what, http.StatusOK, http.StatusNotFound)
	if err != nil {
		return "", err
	}
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		return "exists", nil
	}
	var how string
	err = r.c.retry(ctx, func() (bool, error) {
		loc := ""
		for _, f := range from {
			q := url.Values{"mount": {d.String()}, "from": {f}}
			res, err := r.do(ctx, http.MethodPost, r.url("blobs/uploads/?"+q.Encode()), nil, nil, what, http.StatusCreated, http.StatusAccepted)
			if err != nil {
				continue // a refused mount: upload instead
			}
			res.Body.Close()
			if res.StatusCode == http.StatusCreated {
				how = "mounted:" + f
				return false, nil
			}
			loc = location(res)
			break
		}
		if loc == "" {
			res, err := r.do(ctx, http.MethodPost, r.url("blobs/uploads/"), nil, nil, what, http.StatusAccepted)
			if err != nil {
				return false, err
			}
			res.Body.Close()
			loc = location(res)
			if loc == "" {
				return false, errdefs.InvalidArgument("%s: the registry started an upload without a Location", what)
			}
		}
		u, err := url.Parse(loc)
		if err != nil {
			return false, errdefs.InvalidArgument("%s: upload location %q: %v", what, loc, err)
		}
		q := u.Query()
		q.Set("digest", d.String())
		u.RawQuery = q.Encode()
		body, err := open()
		if err != nil {
			return false, err
		}
		defer body.Close()
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), body)
		if err != nil {
			return false, err
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("User-Agent", userAgent)
		resp, err := r.hc.Do(req)
		if err != nil {
			return transient(err), errdefs.Unavailable("%s: %v", what, unwrapURLError(err))
		}
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
			again := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
			return again, responseError(resp, what)
		}
		resp.Body.Close()
		how = "pushed"
		return false, nil
	})
	return how, err
}

// location is an upload's Location, resolved against its request.
func location(res *http.Response) string {
	loc := res.Header.Get("Location")
	if loc == "" {
		return ""
	}
	u, err := res.Request.URL.Parse(loc)
	if err != nil {
		return ""
	}
	return u.String()
}
