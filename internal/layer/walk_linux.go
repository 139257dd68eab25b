package layer

import (
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// A container can nest directories without limit (30000 levels take it a
// second). The walks of its trees (cp, export, diff, commit) therefore
// hold at most maxWalkFDs directory descriptors, and refuse entry names
// longer than maxPathLen, which also bounds the memory the names take.
const (
	maxWalkFDs = 64
	// maxPathLen is Linux's PATH_MAX: no path-based tool (docker's own
	// archiver included) can name a deeper file.
	maxPathLen = 4096
)

// level is one directory on a walk's path from its root: its descriptor
// (-1 while closed) and its identity, to check a reopened descriptor.
type level struct {
	fd       int
	dev, ino uint64
}

// dirStack is the path of a walk. Only its deepest maxWalkFDs levels are
// open; a shallower one is reopened through ".." of its child when the
// walk comes back to it, and must be the very directory it was.
type dirStack struct {
	levels []*level
	first  int // levels[first:] are open
}

// push makes the directory open as fd the deepest level; it takes fd.
func (s *dirStack) push(fd int) (*level, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	lv := &level{fd: fd, dev: st.Dev, ino: st.Ino}
	s.levels = append(s.levels, lv)
	if len(s.levels)-s.first > maxWalkFDs {
		unix.Close(s.levels[s.first].fd)
		s.levels[s.first].fd = -1
		s.first++
	}
	return lv, nil
}

// pop closes the deepest level, reopening its parent first if needed.
func (s *dirStack) pop() error {
	n := len(s.levels)
	lv := s.levels[n-1]
	var err error
	if n >= 2 && s.first == n-1 {
		err = reopenParent(lv.fd, s.levels[n-2])
		s.first--
	}
	unix.Close(lv.fd)
	s.levels = s.levels[:n-1]
	if s.first > len(s.levels) {
		s.first = len(s.levels)
	}
	return err
}

// depth is the number of levels below the root.
func (s *dirStack) depth() int { return len(s.levels) - 1 }

// closeAll closes what is still open (after an error).
func (s *dirStack) closeAll() {
	for _, lv := range s.levels {
		if lv.fd >= 0 {
			unix.Close(lv.fd)
			lv.fd = -1
		}
	}
	s.levels, s.first = nil, 0
}

// reopenParent opens ".." of the directory childfd as p's descriptor. A
// container that moved the child meanwhile makes ".." another directory:
// that is an error, never a walk somewhere else.
func reopenParent(childfd int, p *level) error {
	fd, err := openatRetry(childfd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return errdefs.Conflict("layer: reopen a parent directory: %v; the container changed its files meanwhile, try again", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Dev != p.dev || st.Ino != p.ino {
		unix.Close(fd)
		return errdefs.Conflict("layer: a directory was moved while being read; the container changed its files meanwhile, try again")
	}
	p.fd = fd
	return nil
}

// tooDeep is the error for an entry name longer than maxPathLen.
func tooDeep(what, name string, depth int) error {
	return errdefs.InvalidArgument("%s: the path %q... lies %d directories deep, beyond %d bytes (PATH_MAX), which berth does not archive or list (nor does docker); move or remove that tree in the container and try again",
		what, shorten(name), depth, maxPathLen)
}

func shorten(name string) string {
	if len(name) > 64 {
		return name[:64]
	}
	return name
}

// reopenRegular opens for reading the file pfd (an O_PATH descriptor)
// refers to, if it is a regular file: the open goes through the
// descriptor's procfs magic link, which names that very inode, so no name
// is resolved again and a device node or fifo swapped in by a container
// is never opened. notReg reports anything else (nothing is opened).
func reopenRegular(pfd int) (fd int, notReg bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return -1, false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, true, nil
	}
	fd, err = openatRetry(unix.AT_FDCWD, procFDPath(pfd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	return fd, false, err
}
