package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
)

func TestPutAndRead(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello layer")
	want := digest.FromBytes(data)
	tests := []struct {
		name     string
		expected digest.Digest
		wantErr  error
	}{
		{"no expectation", "", nil},
		{"matching digest", want, nil},
		{"mismatching digest", digest.FromString("other"), errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, n, err := s.Put(context.Background(), bytes.NewReader(data), tc.expected)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || d != want || n != int64(len(data)) {
				t.Fatalf("Put = %s %d %v", d, n, err)
			}
			got, err := s.ReadAll(d)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadAll = %q %v", got, err)
			}
		})
	}
	// A failed Put leaves nothing behind in the ingest directory.
	ents, _ := os.ReadDir(filepath.Join(s.root, "ingest"))
	if len(ents) != 0 {
		t.Fatalf("ingest not empty: %v", ents)
	}
	if _, err := s.Open(digest.FromString("absent")); !errdefs.IsNotFound(err) {
		t.Fatalf("Open absent = %v", err)
	}
}
