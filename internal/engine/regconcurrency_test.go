package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry"
)

// The command line's --max-concurrent-downloads/--max-concurrent-uploads
// win over daemon.json; 0 keeps the file's (or dockerd's defaults).
func TestApplyConcurrency(t *testing.T) {
	t.Setenv("BERTH_MAX_CONCURRENT_DOWNLOADS", "")
	file := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(file, []byte(`{"max-concurrent-downloads": 7, "max-concurrent-uploads": 9}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		file       string
		down, up   int
		wantDown   int
		wantUp     int
		wantErrArg bool
	}{
		{"defaults", "", 0, 0, 3, 5, false},
		{"file", file, 0, 0, 7, 9, false},
		{"flags over defaults", "", 1, 2, 1, 2, false},
		{"flags over file", file, 4, 0, 4, 9, false},
		{"negative downloads", "", -1, 0, 0, 0, true},
		{"negative uploads", "", 0, -3, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.file
			if path == "" {
				path = filepath.Join(t.TempDir(), "none.json")
			}
			o, err := registry.LoadConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			err = applyConcurrency(Config{MaxConcurrentDownloads: tt.down, MaxConcurrentUploads: tt.up}, &o)
			if tt.wantErrArg {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("err = %v, want an invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.MaxConcurrentDownloads != tt.wantDown || o.MaxConcurrentUploads != tt.wantUp {
				t.Errorf("downloads %d uploads %d, want %d %d", o.MaxConcurrentDownloads, o.MaxConcurrentUploads, tt.wantDown, tt.wantUp)
			}
		})
	}
}
