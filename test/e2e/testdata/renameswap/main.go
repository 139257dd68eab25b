// Command renameswap is an attacker's helper for the end-to-end tests: it
// swaps two names in a directory with renameat2(RENAME_EXCHANGE) as fast
// as it can, for a bounded time, so that a path another process resolves
// through that directory flips between a directory and a symlink.
//
// Usage: renameswap DIR NAME1 NAME2 SECONDS
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: renameswap DIR NAME1 NAME2 SECONDS")
		os.Exit(2)
	}
	secs, err := strconv.Atoi(os.Args[4])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	dir, err := unix.Open(os.Args[1], unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	a, b := os.Args[2], os.Args[3]
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		for i := 0; i < 1000; i++ {
			if err := unix.Renameat2(dir, a, dir, b, unix.RENAME_EXCHANGE); err != nil {
				fmt.Fprintln(os.Stderr, "renameat2:", err)
				os.Exit(1)
			}
		}
		n += 1000
	}
	fmt.Println("swaps:", n)
}
