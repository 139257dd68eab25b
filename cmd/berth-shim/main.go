// Command berth-shim runs berth's container start-path processes (_init,
// _exec, _monitor; see cmd/internal/hidden) from a binary that links only
// what they need, so that each of them starts fast.
package main

import (
	"fmt"
	"os"

	"github.com/berth-dev/berth/cmd/internal/hidden"
)

func init() { hidden.LockThreadIfNeeded(os.Args) }

func main() {
	c, ok := hidden.Lookup(os.Args)
	if !ok {
		fmt.Fprintln(os.Stderr, "berth-shim runs berth's container processes; it is started by berth, not by hand")
		os.Exit(2)
	}
	os.Exit(c.Main(os.Args[2:]))
}
