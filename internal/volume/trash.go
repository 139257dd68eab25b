package volume

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/runtime"
)

// The trash holds the trees of removed volumes until they are deleted.
// Removal renames a volume's directory into it inside the metadata
// transaction that deletes the record (a rename is one system call), and
// deletes it after the commit. An entry is named
// <volume>.<pid>.<start time>.<random> after the process deleting it: one
// whose process is gone (killed during the delete) is deleted by the next
// volume removal or prune.
func (s *Store) trashDir() string { return filepath.Join(s.root, ".trash") }

// toTrash moves volume name's directory into the trash and returns its
// path there ("" when it has no directory).
func (s *Store) toTrash(name string) (string, error) {
	if err := os.MkdirAll(s.trashDir(), 0o700); err != nil {
		return "", err
	}
	dst, err := s.toTrashName(name)
	if err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(s.root, name), dst); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("remove volume %s: %w", name, err)
	}
	return dst, nil
}

// toTrashName is the trash entry this process gives volume name's tree.
func (s *Store) toTrashName(name string) (string, error) {
	start, err := runtime.ProcessStartTime(os.Getpid())
	if err != nil {
		return "", err
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	return filepath.Join(s.trashDir(), fmt.Sprintf("%s.%d.%d.%s", name, os.Getpid(), start, hex.EncodeToString(rnd[:]))), nil
}

// fromTrash undoes toTrash after a transaction that did not commit.
func (s *Store) fromTrash(trashed, name string) {
	if trashed != "" {
		os.Rename(trashed, filepath.Join(s.root, name))
	}
}

// emptyTrash deletes the trash entries whose deleting process died.
func (s *Store) emptyTrash() {
	entries, err := os.ReadDir(s.trashDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		f := strings.Split(e.Name(), ".")
		if len(f) < 4 {
			continue
		}
		pid, _ := strconv.Atoi(f[len(f)-3])
		start, _ := strconv.ParseUint(f[len(f)-2], 10, 64)
		if st, err := runtime.ProcessStartTime(pid); err == nil && st == start {
			continue // its process is deleting it
		}
		s.removeTree(filepath.Join(s.trashDir(), e.Name()))
	}
}
