package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// Media types of the Docker distribution formats (the OCI ones are in
// package image).
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeSchema1            = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaTypeSchema1Plain       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeOCINondist         = "application/vnd.oci.image.layer.nondistributable.v1.tar"
)

var manifestAccept = strings.Join([]string{
	image.MediaTypeImageIndex, MediaTypeDockerManifestList, image.MediaTypeImageManifest, MediaTypeDockerManifest,
}, ", ")

// layerMediaType reports whether mt is a layer berth can extract, and
// whether it is foreign (non-distributable).
func layerMediaType(mt string) (ok, foreign bool) {
	switch mt {
	case image.MediaTypeImageLayer, image.MediaTypeImageLayerGzip, image.MediaTypeImageLayerZstd, MediaTypeDockerLayer:
		return true, false
	case MediaTypeDockerForeignLayer, mediaTypeOCINondist, mediaTypeOCINondist + "+gzip", mediaTypeOCINondist + "+zstd":
		return true, true
	}
	return false, false
}

func isIndex(mt string) bool {
	return mt == image.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// document is a manifest or index as the registry sent it.
type document struct {
	raw       []byte
	mediaType string
	digest    digest.Digest
}

// manifest fetches the manifest or index ref (a tag or a digest) names,
// verified against the digest when it is one.
func (r *repo) manifest(ctx context.Context, ref string) (document, error) {
	what := r.name() + ":" + ref
	if strings.Contains(ref, ":") {
		what = r.name() + "@" + ref
	}
	res, err := r.do(ctx, http.MethodGet, r.url("manifests/"+ref), http.Header{"Accept": {manifestAccept}}, nil, "manifest "+what)
	if err != nil {
		return document{}, err
	}
	defer res.Body.Close()
	if res.ContentLength > maxManifestSize {
		return document{}, errdefs.InvalidArgument("manifest %s: %d bytes, more than the %d MiB a manifest may have", what, res.ContentLength, maxManifestSize>>20)
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxManifestSize+1))
	if err != nil {
		return document{}, errdefs.Unavailable("manifest %s: %v", what, err)
	}
	if len(raw) > maxManifestSize {
		return document{}, errdefs.InvalidArgument("manifest %s: more than the %d MiB a manifest may have", what, maxManifestSize>>20)
	}
	doc := document{raw: raw, digest: digest.FromBytes(raw)}
	if strings.Contains(ref, ":") && digest.Digest(ref) != doc.digest {
		return document{}, errdefs.InvalidArgument("manifest %s: the registry sent content with digest %s (corrupt or tampered with)", what, doc.digest)
	}
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
		Config        json.RawMessage   `json:"config"`
		FSLayers      json.RawMessage   `json:"fsLayers"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return document{}, errdefs.InvalidArgument("manifest %s (%s): not a JSON document: %v", what, doc.digest, err)
	}
	ct, _, _ := strings.Cut(res.Header.Get("Content-Type"), ";")
	ct = strings.TrimSpace(ct)
	doc.mediaType = probe.MediaType
	if doc.mediaType == "" {
		switch {
		case ct != "" && ct != "application/json" && ct != "text/plain" && ct != "application/octet-stream":
			doc.mediaType = ct
		case probe.Manifests != nil:
			doc.mediaType = image.MediaTypeImageIndex
		case probe.Config != nil:
			doc.mediaType = image.MediaTypeImageManifest
		case probe.FSLayers != nil || probe.SchemaVersion == 1:
			doc.mediaType = mediaTypeSchema1
		}
	}
	switch doc.mediaType {
	case image.MediaTypeImageIndex, MediaTypeDockerManifestList, image.MediaTypeImageManifest, MediaTypeDockerManifest:
	case mediaTypeSchema1, mediaTypeSchema1Plain:
		return document{}, errdefs.NotImplemented("manifest %s: Docker image manifest version 2, schema 1 is deprecated and not supported; push the image again with a current tool", what)
	default:
		return document{}, errdefs.InvalidArgument("manifest %s (%s): unknown media type %q", what, doc.digest, doc.mediaType)
	}
	return doc, nil
}

// blobBytes fetches a small blob (a configuration), verified.
func (r *repo) blobBytes(ctx context.Context, d digest.Digest, size, limit int64) ([]byte, error) {
	what := fmt.Sprintf("blob %s@%s", r.name(), d)
	if size > limit {
		return nil, errdefs.InvalidArgument("%s: %d bytes, more than the %d MiB allowed", what, size, limit>>20)
	}
	var out []byte
	err := r.c.retry(ctx, func() (bool, error) {
		res, err := r.do(ctx, http.MethodGet, r.url("blobs/"+d.String()), nil, nil, what)
		if err != nil {
			return false, err
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
		if err != nil {
			return transient(err), errdefs.Unavailable("%s: %v", what, err)
		}
		if int64(len(raw)) > limit {
			return false, errdefs.InvalidArgument("%s: more than the %d MiB allowed", what, limit>>20)
		}
		if got := digest.FromBytes(raw); got != d {
			if size > 0 && int64(len(raw)) < size {
				return true, errdefs.Unavailable("%s: truncated: %d of %d bytes", what, len(raw), size)
			}
			return false, errdefs.InvalidArgument("%s: the registry sent content with digest %s (corrupt or tampered with)", what, got)
		}
		out = raw
		return false, nil
	})
	return out, err
}

// blobReader streams a blob and resumes it with a Range request where
// the connection broke, so that the consumer (the extraction) sees one
// stream. It never yields more than size bytes when size is known.
type blobReader struct {
	ctx  context.Context
	r    *repo
	url  string
	what string
	size int64
	off  int64
	body io.ReadCloser
	n    *atomic.Int64 // bytes read, for progress
	err  error         // the failure it ended with, for the caller's message
	// onEOF, when set, is called once the whole blob has been read.
	onEOF func()
}

// openBlob starts the download of blob d; a foreign layer's urls are tried
// when the registry does not have it (docker's order).
func (r *repo) openBlob(ctx context.Context, d digest.Digest, size int64, urls []string) (*blobReader, error) {
	br := &blobReader{ctx: ctx, r: r, url: r.url("blobs/" + d.String()), what: fmt.Sprintf("blob %s@%s", r.name(), d), size: size, n: &atomic.Int64{}}
	err := br.open()
	if err == nil || len(urls) == 0 {
		return br, err
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			continue
		}
		br.url = u
		if br.open() == nil {
			return br, nil
		}
	}
	return nil, err
}

func (b *blobReader) open() error {
	hdr := http.Header{}
	if b.off > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", b.off))
	}
	res, err := b.r.do(b.ctx, http.MethodGet, b.url, hdr, nil, b.what)
	if err != nil {
		return err
	}
	if b.off > 0 && res.StatusCode == http.StatusOK {
		// No ranges: skip what was read.
		if _, err := io.CopyN(io.Discard, res.Body, b.off); err != nil {
			res.Body.Close()
			return errdefs.Unavailable("%s: truncated: the stream broke after %d of %d bytes, and resuming it failed: %v", b.what, b.off, b.size, err)
		}
	}
	b.body = res.Body
	return nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.size > 0 && int64(len(p)) > b.size-b.off+1 {
		p = p[:b.size-b.off+1] // one byte more than promised reveals a longer blob
	}
	delay := b.r.c.backoff
	for attempt := 0; ; attempt++ {
		if b.body == nil {
			if err := b.open(); err != nil {
				b.err = err
				return 0, err
			}
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		b.n.Add(int64(n))
		if b.size > 0 && b.off > b.size {
			b.err = errdefs.InvalidArgument("%s: the registry sent more than the %d bytes the manifest states", b.what, b.size)
			return n, b.err
		}
		if err == io.EOF && b.size > 0 && b.off < b.size {
			err = io.ErrUnexpectedEOF
		}
		if err == io.EOF && b.onEOF != nil {
			b.onEOF()
			b.onEOF = nil
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		b.body.Close()
		b.body = nil
		if !transient(err) || attempt >= b.r.c.attempts-1 {
			if err == io.ErrUnexpectedEOF {
				b.err = errdefs.Unavailable("%s: truncated: the stream ended after %d of %d bytes", b.what, b.off, b.size)
			} else {
				b.err = errdefs.Unavailable("%s: %v", b.what, err)
			}
			return n, b.err
		}
		if n > 0 {
			return n, nil // the next Read resumes
		}
		select {
		case <-b.ctx.Done():
			b.err = b.ctx.Err()
			return 0, b.err
		case <-time.After(delay):
		}
		delay = min(delay*2, b.r.c.maxBackoff)
	}
}

func (b *blobReader) Close() error {
	if b.body != nil {
		return b.body.Close()
	}
	return nil
}
