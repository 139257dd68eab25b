//go:build linux

package layer

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestDecompressStream(t *testing.T) {
	plain := buildTar(t, fileEnt("etc/hostname", "berth\n", 0o644), dirEnt("tmp/", 0o1777))
	zstdFrames := func() []byte {
		// Written with the zstd package directly, not with CompressStream.
		var buf bytes.Buffer
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(plain)
		zw.Close()
		return buf.Bytes()
	}
	tests := []struct {
		name  string
		input func() []byte
		want  Compression
		data  []byte
	}{
		{"uncompressed", func() []byte { return plain }, Uncompressed, plain},
		{"gzip", func() []byte { return compress(t, Gzip, plain) }, Gzip, plain},
		{"zstd", func() []byte { return compress(t, Zstd, plain) }, Zstd, plain},
		{"zstd package", zstdFrames, Zstd, plain},
		{"zstd with skippable frame", func() []byte {
			skip := []byte{0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c'}
			return append(skip, zstdFrames()...)
		}, Zstd, plain},
		{"empty", func() []byte { return nil }, Uncompressed, nil},
		{"short", func() []byte { return []byte{0x1f} }, Uncompressed, []byte{0x1f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, c, err := DecompressStream(bytes.NewReader(tt.input()))
			if err != nil {
				t.Fatalf("DecompressStream: %v", err)
			}
			defer rc.Close()
			if c != tt.want {
				t.Errorf("compression = %v, want %v", c, tt.want)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, tt.data) {
				t.Errorf("decompressed %d bytes, want %d", len(got), len(tt.data))
			}
		})
	}
}

func TestDecompressStreamRefusesOthers(t *testing.T) {
	for name, magic := range map[string][]byte{
		"bzip2": []byte("BZh91AY&SY"),
		"xz":    {0xfd, '7', 'z', 'X', 'Z', 0x00, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := DecompressStream(bytes.NewReader(magic))
			if !errors.Is(err, errdefs.ErrNotImplemented) {
				t.Fatalf("DecompressStream = %v, want not implemented", err)
			}
		})
	}
}

func TestCompressionString(t *testing.T) {
	for c, want := range map[Compression]string{Uncompressed: "uncompressed", Gzip: "gzip", Zstd: "zstd", 7: "Compression(7)"} {
		if got := c.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(c), got, want)
		}
	}
}

func compress(t *testing.T, c Compression, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := CompressStream(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
