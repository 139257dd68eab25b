// Package layer reads and writes OCI / Docker image layers: tar streams,
// optionally gzip- or zstd-compressed, whose whiteout entries record
// deletions from the layers below.
//
// Layers are stored as overlayfs lower directories, so Apply converts the
// OCI whiteouts of a layer into overlayfs whiteouts (character device 0/0)
// and opaque directories (xattr trusted.overlay.opaque=y), and Diff does the
// reverse on a container's overlayfs upper directory.
package layer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Compression of a layer stream.
type Compression int

// Compressions a layer may use. Docker's layer media types use gzip
// (application/vnd.docker.image.rootfs.diff.tar.gzip); OCI adds zstd.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

// String returns the name used in OCI media type suffixes ("gzip", "zstd"),
// or "uncompressed".
func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// Magic numbers at the start of compressed streams.
var (
	gzipMagic  = []byte{0x1f, 0x8b}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	bzip2Magic = []byte{'B', 'Z', 'h'}
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// isZstdSkippable reports whether b starts with a zstd skippable frame
// (magic 0x184D2A50 to 0x184D2A5F, little endian), which a zstd stream may
// begin with.
func isZstdSkippable(b []byte) bool {
	return len(b) >= 4 && b[0]&0xf0 == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18
}

// DecompressStream detects gzip / zstd / plain tar by magic bytes and
// returns a reader of the plain tar. Anything that is neither gzip nor zstd
// is passed through unchanged as Uncompressed; bzip2 and xz are recognised
// and refused with an errdefs.ErrNotImplemented error.
//
// Closing the returned reader releases the decompressor; it does not close
// r. The gzip checksum is verified when the stream is read to its end
// (Apply drains its input for that reason).
func DecompressStream(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// A short stream (an empty tar is 1024 bytes, a truly empty one 0) is
	// not an error here: Peek returns what there is.
	magic, err := br.Peek(6)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, Uncompressed, fmt.Errorf("layer: reading stream header: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, Gzip, errdefs.InvalidArgument("layer: invalid gzip stream: %w", err)
		}
		return zr, Gzip, nil
	case bytes.HasPrefix(magic, zstdMagic) || isZstdSkippable(magic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, Zstd, errdefs.InvalidArgument("layer: invalid zstd stream: %w", err)
		}
		return zr.IOReadCloser(), Zstd, nil
	case bytes.HasPrefix(magic, bzip2Magic):
		return nil, Uncompressed, errdefs.NotImplemented("layer: bzip2-compressed layers are not supported")
	case bytes.HasPrefix(magic, xzMagic):
		return nil, Uncompressed, errdefs.NotImplemented("layer: xz-compressed layers are not supported")
	}
	return io.NopCloser(br), Uncompressed, nil
}

// CompressStream returns a writer that compresses what is written to it
// with c into w. Close flushes the compressor; it does not close w.
func CompressStream(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Uncompressed:
		return nopWriteCloser{w}, nil
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case Zstd:
		zw, err := zstd.NewWriter(w)
		if err != nil {
			return nil, fmt.Errorf("layer: zstd writer: %w", err)
		}
		return zw, nil
	}
	return nil, errdefs.InvalidArgument("layer: unknown compression %v", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
