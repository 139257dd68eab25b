package cli

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportsOnlyTheEngine holds the CLI to decision 6 of DESIGN.md: it
// is flags -> request -> engine -> render, and sees the engine's request
// and result types only, never the services below it (container, image,
// volume, runtime, layer...). The runtime's command line (berth runtime,
// berth-runc) and the hidden start-path commands live outside this
// package. Test files may import more; the package may not.
func TestImportsOnlyTheEngine(t *testing.T) {
	allowed := map[string]bool{
		"github.com/berth-dev/berth/internal/engine":  true,
		"github.com/berth-dev/berth/internal/errdefs": true,
		"github.com/berth-dev/berth/internal/filters": true,
		"github.com/berth-dev/berth/internal/term":    true,
		"github.com/spf13/cobra":                      true,
		"github.com/spf13/pflag":                      true, // cobra's flag set, which its API exposes
	}
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Imports) == 0 {
		t.Fatal("no imports found: the test does not see the package")
	}
	for _, imp := range pkg.Imports {
		first, _, _ := strings.Cut(imp, "/")
		stdlib := !strings.Contains(first, ".")
		if !stdlib && !allowed[imp] {
			t.Errorf("internal/cli imports %s: the CLI may use only internal/engine (with errdefs, filters, term), cobra and the standard library; add a use case to the engine instead", imp)
		}
	}
}
