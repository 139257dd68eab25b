//go:build linux

package layer

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// The gzip reader verifies every member's checksum and length, refuses
// a cut stream and joins members (a faster reader must keep all that).
func TestDecompressStreamGzipReadAhead(t *testing.T) {
	// Megabytes of half-compressible data.
	rng := rand.New(rand.NewPCG(1, 2))
	plain := make([]byte, 5<<20+123)
	for i := range plain {
		if i%3 == 0 {
			plain[i] = byte(rng.Uint32())
		} else {
			plain[i] = byte(i / 1000)
		}
	}
	gz := compress(t, Gzip, plain)
	corrupt := func(b []byte, off int) []byte {
		c := bytes.Clone(b)
		c[len(c)+off] ^= 0xff
		return c
	}
	tests := []struct {
		name    string
		input   []byte
		want    []byte
		wantErr bool
	}{
		{"large", gz, plain, false},
		{"two members", append(bytes.Clone(gz), compress(t, Gzip, []byte("tail"))...), append(bytes.Clone(plain), "tail"...), false},
		{"bad crc", corrupt(gz, -8), nil, true},
		{"bad length", corrupt(gz, -1), nil, true},
		{"truncated in the data", gz[:len(gz)/2], nil, true},
		{"truncated trailer", gz[:len(gz)-4], nil, true},
		{"no trailer", gz[:len(gz)-8], nil, true},
		{"garbage after", append(bytes.Clone(gz), "garbage"...), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, c, err := DecompressStream(bytes.NewReader(tt.input))
			if err != nil {
				t.Fatalf("DecompressStream: %v", err)
			}
			defer rc.Close()
			if c != Gzip {
				t.Fatalf("compression = %v", c)
			}
			got, err := io.ReadAll(rc)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("read %d bytes without an error", len(got))
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("decompressed %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// countingReader records reads after it is frozen.
type countingReader struct {
	r      io.Reader
	frozen bool
	late   int
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.frozen {
		c.late++
	}
	return c.r.Read(p)
}

func TestDecompressStreamGzipCloseStopsReading(t *testing.T) {
	plain := bytes.Repeat([]byte("0123456789abcdef"), 1<<20)
	cr := &countingReader{r: bytes.NewReader(compress(t, Gzip, plain))}
	rc, _, err := DecompressStream(cr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	// The caller (IngestLayer) discards the blob once the reader is
	// closed: a reader that inflates ahead must not touch its input any
	// more.
	cr.frozen = true
	for range 100 {
		if _, err := rc.Read(make([]byte, 10)); err == nil {
			break
		}
	}
	if cr.late != 0 {
		t.Errorf("%d reads of the input after Close", cr.late)
	}
}
