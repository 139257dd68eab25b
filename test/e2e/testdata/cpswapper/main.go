// Command cpswapper is the attacker of berth's race tests: run inside a
// container, it exchanges two paths (a directory and a symlink to a host
// directory) with renameat2(RENAME_EXCHANGE) as fast as it can, so that a
// path resolved by the engine as a string is a directory one moment and a
// symlink the next. Usage: cpswapper PATH1 PATH2. It runs until killed.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: cpswapper PATH1 PATH2")
		os.Exit(2)
	}
	// Tell the test the loop is running.
	if f, err := os.Create("/swapper.ready"); err == nil {
		f.Close()
	}
	for {
		if err := unix.Renameat2(unix.AT_FDCWD, os.Args[1], unix.AT_FDCWD, os.Args[2], unix.RENAME_EXCHANGE); err != nil {
			fmt.Fprintln(os.Stderr, "cpswapper:", err)
			os.Exit(1)
		}
	}
}
