package layer

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// Size is the number of bytes below dir as Docker counts a container's
// writable layer (SizeRw): every entry but directories, a hard-linked
// file once, empty entries (whiteouts) not at all. The walk goes by
// descriptors, never follows a symlink and holds at most maxWalkFDs
// directories open, so a container's tree can neither lead it elsewhere
// nor exhaust its descriptors. A missing dir has size 0.
func Size(ctx context.Context, dir string) (int64, error) {
	fd, err := openatRetry(unix.AT_FDCWD, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("layer: open %s: %w", dir, err)
	}
	s := sizer{ctx: ctx, seen: map[devIno]struct{}{}}
	defer s.stack.closeAll()
	err = s.walk(fd)
	return s.n, err
}

type sizer struct {
	ctx   context.Context
	stack dirStack
	seen  map[devIno]struct{}
	n     int64
}

// walk adds the entries below the directory open as fd; it takes fd.
func (s *sizer) walk(fd int) error {
	lv, err := s.stack.push(fd)
	if err != nil {
		return err
	}
	err = s.dir(lv)
	if perr := s.stack.pop(); err == nil {
		err = perr
	}
	return err
}

func (s *sizer) dir(lv *level) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	names, err := readDirNames(lv.fd)
	if err != nil {
		return fmt.Errorf("layer: read a directory: %w", err)
	}
	for _, name := range names {
		var st unix.Stat_t
		// lv.fd is read anew: the walk below may have reopened it.
		if err := unix.Fstatat(lv.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // removed meanwhile
			}
			return fmt.Errorf("layer: stat %q: %w", name, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			child, err := openatRetry(lv.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			switch err {
			case nil:
			case unix.ENOENT, unix.ENOTDIR, unix.ELOOP:
				continue // replaced meanwhile: not a directory to count
			default:
				return fmt.Errorf("layer: open %q: %w", name, err)
			}
			if err := s.walk(child); err != nil {
				return err
			}
			continue
		}
		if st.Size <= 0 {
			continue
		}
		k := devIno{uint64(st.Dev), st.Ino}
		if _, dup := s.seen[k]; dup {
			continue
		}
		s.seen[k] = struct{}{}
		s.n += st.Size
	}
	return nil
}
