package cli

import (
	"context"
	"path/filepath"

	"github.com/berth-dev/berth/internal/runtime/ocicli"
)

// IsRuntimeName reports whether berth was called as berth-runc (or runc):
// then it is runc's command line over the built-in runtime.
func IsRuntimeName(argv0 string) bool { return ocicli.IsRuntimeName(argv0) }

// RuntimeMain runs `berth runtime ARGS` (or berth-runc ARGS): the
// built-in runtime with runc's command line, for other engines and OCI
// tools. name is the program name for messages.
func RuntimeMain(ctx context.Context, name string, args []string) int {
	return ocicli.Main(ctx, filepath.Base(name), args)
}
