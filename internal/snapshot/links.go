package snapshot

// How many layers one overlay mount can stack.
//
// The kernel reads a mount's options from one page (4096 bytes here), so
// lowerdirs given as full paths (<root>/snapshots/<64 hex>/fs) would cap an
// image at about 40 layers. Like docker's overlay2 (its l/ directory), every
// snapshot has a short link, snapshots/l/<26 chars> -> ../<hex>/fs. When
// the full paths do not fit, the mount is made from a thread whose working
// directory is the snapshots directory, with the links as lowerdirs, so
// that each layer costs 29 bytes of options: some 130 layers fit, beyond
// docker's 125-layer images. The link name is derived from the
// chain ID (128 bits of it), so no record is needed and stores made before
// the links existed get theirs at their first mount.
//
// The working directory is changed only in a thread of its own (unshared
// file-system attributes, entered by descriptor), which exits with the
// mount: the rest of the process, and every other path it resolves, keeps
// its own working directory.

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
)

const (
	// linkDir holds the short links, under the snapshots directory.
	linkDir = "l"
	// maxOverlayLowers is overlayfs' limit on lower layers (OVL_MAX_STACK).
	maxOverlayLowers = 500
)

// linkAlphabet is base32's (RFC 4648), written out: encoding/base32 costs
// package initialisation in every berth process.
const linkAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// LinkName is the short name of snapshot chainID under snapshots/l: the
// first 128 bits of the chain ID in unpadded base32 (26 characters).
func LinkName(chainID digest.Digest) string {
	enc := chainID.Encoded()
	var out [26]byte
	var acc uint32
	bits, n := 0, 0
	for i := range 16 {
		acc = acc<<8 | uint32(unhex(enc[2*i])<<4|unhex(enc[2*i+1]))
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[n] = linkAlphabet[acc>>uint(bits)&31]
			n++
		}
	}
	out[n] = linkAlphabet[acc<<uint(5-bits)&31] // the last 3 bits, padded with zeros
	return string(out[:])
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return 0
}

func (s *Snapshotter) linkPath(chainID digest.Digest) string {
	return filepath.Join(s.root, "snapshots", linkDir, LinkName(chainID))
}

func linkTarget(chainID digest.Digest) string {
	return filepath.Join("..", chainID.Encoded(), "fs")
}

// ensureLink makes the short link of chainID, replacing a wrong one (what a
// crash or an older berth may leave) atomically.
func (s *Snapshotter) ensureLink(chainID digest.Digest) error {
	p, want := s.linkPath(chainID), linkTarget(chainID)
	if got, err := os.Readlink(p); err == nil && got == want {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", p, os.Getpid())
	os.Remove(tmp)
	if err := os.Symlink(want, tmp); err != nil {
		return fmt.Errorf("snapshot %s: link: %w", chainID, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot %s: link: %w", chainID, err)
	}
	return nil
}

func (s *Snapshotter) removeLink(chainID digest.Digest) {
	os.Remove(s.linkPath(chainID))
}

// mountOverlay checks that the layers exist and fit into one mount, then
// mounts them: with full paths when they fit (most images: no extra cost),
// else with the short links from a thread in the snapshots directory.
// Nothing is mounted when a check fails.
func (s *Snapshotter) mountOverlay(id string, chainIDs []digest.Digest, target string, volatile bool) error {
	snapDir, err := os.OpenFile(filepath.Join(s.root, "snapshots"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mount container %s rootfs: %w", id, err)
	}
	defer snapDir.Close()
	dfd := int(snapDir.Fd())

	// lowers are relative to the snapshots directory, abs the same as
	// full paths.
	snapRoot := filepath.Join(s.root, "snapshots")
	lowers := make([]string, 0, len(chainIDs)+1)
	abs := make([]string, 0, len(chainIDs)+1)
	cdir := filepath.Join("..", "containers", id)
	var st unix.Stat_t
	if unix.Fstatat(dfd, filepath.Join(cdir, "init"), &st, 0) == nil {
		lowers = append(lowers, filepath.Join(cdir, "init"))
		abs = append(abs, s.InitDir(id))
	}
	for i := len(chainIDs) - 1; i >= 0; i-- {
		ch := chainIDs[i]
		if err := ch.Validate(); err != nil {
			return errdefs.InvalidArgument("layer %q of the image: %v", ch, err)
		}
		link := filepath.Join(linkDir, LinkName(ch))
		if err := unix.Fstatat(dfd, link, &st, 0); err != nil {
			// No link yet (a store from before the links) or a stale one.
			if _, derr := os.Stat(s.Dir(ch)); derr != nil {
				return errdefs.NotFound("layer %s of the image is missing from the store: %v", ch, derr)
			}
			if err := s.ensureLink(ch); err != nil {
				return err
			}
		}
		lowers = append(lowers, link)
		abs = append(abs, s.Dir(ch))
	}
	if len(lowers) > maxOverlayLowers {
		return errdefs.InvalidArgument("image has too many layers (%d): overlayfs stacks at most %d", len(chainIDs), maxOverlayLowers)
	}
	// Most images fit with full paths: mounted from this thread, as
	// always, at no extra cost. Only a long stack takes the relative
	// names and a thread of its own.
	limit := unix.Getpagesize() - 1
	opts := overlayOptions(abs, filepath.Join(snapRoot, cdir), volatile)
	relative := len(opts) > limit
	if relative {
		opts = overlayOptions(lowers, cdir, volatile)
		if len(opts) > limit {
			return errdefs.InvalidArgument("image has too many layers (%d) for one overlay mount: their mount options take %d bytes, the kernel reads at most %d", len(chainIDs), len(opts), limit)
		}
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if !relative {
		return s.mountWith(id, volatile, opts, func(o string) error { return unix.Mount("overlay", target, "overlay", 0, o) })
	}
	// The target is an absolute path under berth's own run root: it is
	// resolved as before, whatever the mounting thread's working directory.
	if !filepath.IsAbs(target) {
		t, err := filepath.Abs(target)
		if err != nil {
			return err
		}
		target = t
	}
	return s.mountWith(id, volatile, opts, func(o string) error { return mountIn(dfd, target, o) })
}

func overlayOptions(lowers []string, cdir string, volatile bool) string {
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lowers, ":"),
		filepath.Join(cdir, "upper"), filepath.Join(cdir, "work"))
	if volatile {
		opts += ",volatile"
	}
	return opts
}

// mountWith mounts with opts, and again without "volatile" on kernels
// before 5.10, which lack it.
func (s *Snapshotter) mountWith(id string, volatile bool, opts string, mount func(string) error) error {
	err := mount(opts)
	if err != nil && volatile {
		err = mount(strings.TrimSuffix(opts, ",volatile"))
	}
	if err != nil {
		return fmt.Errorf("mount container %s rootfs: %w", id, err)
	}
	return nil
}

// mountIn mounts an overlay from a thread whose working directory is dirfd,
// so that the relative paths of opts are resolved from there. The thread
// has its own file-system attributes and is never reused: it ends with the
// goroutine, left locked.
func mountIn(dirfd int, target, opts string) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		// No UnlockOSThread: the changed thread must die with us.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs attributes: %w", err)
			return
		}
		if err := unix.Fchdir(dirfd); err != nil {
			errc <- fmt.Errorf("enter snapshots directory: %w", err)
			return
		}
		errc <- unix.Mount("overlay", target, "overlay", 0, opts)
	}()
	return <-errc
}
