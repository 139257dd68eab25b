package cli

import (
	"fmt"
	"io"
)

// printWarnings prints an engine's warnings as docker's CLI prints
// create's: "WARNING: " and the warning, on stderr; the exit code is
// the command's.
func printWarnings(w io.Writer, warnings []string) {
	for _, s := range warnings {
		fmt.Fprintln(w, "WARNING:", s)
	}
}
