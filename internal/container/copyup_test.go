package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestCopyUpResolvesInRoot: the volume's mount point is resolved inside
// the root, so links in the image lead to the image's files, never to the
// host's, and only an empty volume is copied into.
func TestCopyUpResolvesInRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	host := t.TempDir() // a host directory the image's links name
	os.MkdirAll(filepath.Join(host, "sub"), 0o755)
	os.WriteFile(filepath.Join(host, "sub", "hostfile"), []byte("host"), 0o600)
	rootfs := t.TempDir()
	inRoot := filepath.Join(rootfs, host, "sub")
	os.MkdirAll(inRoot, 0o755)
	os.WriteFile(filepath.Join(inRoot, "imgfile"), []byte("img"), 0o644)
	os.Symlink(host, filepath.Join(rootfs, "abs"))
	os.Symlink(strings.Repeat("../", 20)+strings.TrimPrefix(host, "/"), filepath.Join(rootfs, "rel"))
	os.Symlink("/nonexistent", filepath.Join(rootfs, "dangling"))

	tests := []struct {
		dest string
		want string
	}{
		{"/abs/sub", "imgfile"},
		{"/rel/sub", "imgfile"},
		{"/dangling/sub", ""},
		{"/abs/sub/imgfile", ""}, // a file: nothing to copy
	}
	for _, tc := range tests {
		t.Run(tc.dest, func(t *testing.T) {
			vol := t.TempDir()
			c := &Container{State: State{StartedAt: ZeroTime}, Mounts: []MountInfo{{Type: "volume", Name: "v", Source: vol, Destination: tc.dest}}}
			if err := copyImageDataToVolumes(c, rootfs); err != nil {
				t.Fatal(err)
			}
			var names []string
			ents, _ := os.ReadDir(vol)
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if got := strings.Join(names, ","); got != tc.want {
				t.Fatalf("volume holds %q, want %q", got, tc.want)
			}
		})
	}

	// A volume with data, a nocopy volume and a container that has run
	// are not copied into.
	vol := t.TempDir()
	os.WriteFile(filepath.Join(vol, "mine"), nil, 0o644)
	empty := t.TempDir()
	c := &Container{State: State{StartedAt: ZeroTime}, Mounts: []MountInfo{
		{Type: "volume", Name: "full", Source: vol, Destination: "/abs/sub"},
		{Type: "volume", Name: "nc", Source: empty, Destination: "/abs/sub"},
	}}
	c.Internal.NoCopyVolumes = []string{"nc"}
	if err := copyImageDataToVolumes(c, rootfs); err != nil {
		t.Fatal(err)
	}
	c = &Container{State: State{StartedAt: "2024-01-01T00:00:00Z"}, Mounts: []MountInfo{{Type: "volume", Name: "e", Source: empty, Destination: "/abs/sub"}}}
	if err := copyImageDataToVolumes(c, rootfs); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]int{vol: 1, empty: 0} {
		if ents, _ := os.ReadDir(dir); len(ents) != want {
			t.Fatalf("%s holds %d entries, want %d", dir, len(ents), want)
		}
	}
}
