package cli

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
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

// TestNoServiceThroughTheEngine: the engine's service fields (Containers,
// Images, Volumes, Meta, Content, Snapshots) reach the services without an
// import; the CLI calls the engine's use cases instead. (A syntactic
// check: a method or field selected through one of those names.)
func TestNoServiceThroughTheEngine(t *testing.T) {
	services := map[string]bool{"Containers": true, "Images": true, "Volumes": true, "Meta": true, "Content": true, "Snapshots": true}
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range pkg.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(pkg.Dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if inner, ok := sel.X.(*ast.SelectorExpr); ok && services[inner.Sel.Name] {
				t.Errorf("%s: %s.%s reaches a service below the engine; call an engine use case", fset.Position(sel.Pos()), inner.Sel.Name, sel.Sel.Name)
			}
			return true
		})
	}
}
