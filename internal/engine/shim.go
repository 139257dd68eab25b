package engine

import (
	"os"
	"path/filepath"
)

// ShimName is the file name of the binary of the container start path
// (cmd/berth-shim), installed next to berth.
const ShimName = "berth-shim"

// StartPathBinary is the binary monitors, inits and exec helpers run
// from: berth-shim next to self (the berth binary), which starts much
// faster than berth as it links none of the CLI, API or registry code;
// self when berth is installed alone.
func StartPathBinary(self string) string {
	p := filepath.Join(filepath.Dir(self), ShimName)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	return self
}
