package fsutil

import "golang.org/x/sys/unix"

// Readlinkat reads the symlink name in the directory dirfd, whatever its
// length.
func Readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
