// Command walkattack is the attacker of berth's tree-walk tests, run
// inside a container:
//
//	walkattack deep DIR N   nests N directories "d" below DIR (created),
//	                        one descriptor at a time, then exits.
//	walkattack fifo DIR     makes DIR/file (regular) and DIR/fifo, and
//	                        exchanges them with renameat2(RENAME_EXCHANGE)
//	                        forever. Meanwhile it opens the fifo's write
//	                        end, which blocks until someone opens the read
//	                        end: if that ever happens (only the engine's
//	                        walk reads this tree), it creates /opened.
//	                        /swap.ready tells the loop is running.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "deep":
		if len(os.Args) != 4 {
			usage()
		}
		n, _ := strconv.Atoi(os.Args[3])
		err = deep(os.Args[2], n)
	case "fifo":
		err = fifo(os.Args[2])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "walkattack:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: walkattack deep DIR N | walkattack fifo DIR")
	os.Exit(2)
}

func deep(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			return err
		}
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return err
		}
		fd = next
	}
	return unix.Close(fd)
}

func fifo(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file, pipe := filepath.Join(dir, "file"), filepath.Join(dir, "fifo")
	if err := os.WriteFile(file, []byte("data\n"), 0o644); err != nil {
		return err
	}
	if err := unix.Mkfifo(pipe, 0o644); err != nil {
		return err
	}
	// The write end is opened through the fifo's own inode (an O_PATH
	// descriptor), whatever name it has at the moment.
	pfd, err := unix.Open(pipe, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	go func() {
		w, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			os.WriteFile("/opened", nil, 0o644)
			unix.Close(w)
		}
	}()
	if err := os.WriteFile("/swap.ready", nil, 0o644); err != nil {
		return err
	}
	for {
		if err := unix.Renameat2(unix.AT_FDCWD, file, unix.AT_FDCWD, pipe, unix.RENAME_EXCHANGE); err != nil {
			return err
		}
	}
}
