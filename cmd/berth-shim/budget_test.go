package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The start-path binary's budget. Every `run` starts a monitor and an
// init from it (and every exec an exec helper), and Go initialises every
// package linked into a binary in every process. The figures of
// 2026-12-07 (Go 1.26.8): 176 packages; 65 of them with init work, 171
// allocations in all; package init 0.8 ms (median of 15, a loaded
// 2-core VM). net/http and crypto/tls alone would add ~2.2 ms.
const (
	// maxDeps bounds `go list -deps` of the shim. It leaves room for the
	// network attachment (netlink, nftables) the monitor will need.
	maxDeps = 215
	// maxInitPackages and maxInitAllocs bound what GODEBUG=inittrace=1
	// reports; both are the same on every run.
	maxInitPackages = 85
	maxInitAllocs   = 300
	// maxInitMillis bounds the median over initRuns runs of the summed
	// package-init clock time: loose enough for a loaded machine, tight
	// enough to catch net/http with crypto/tls.
	maxInitMillis = 2.0
	initRuns      = 15
)

// forbidden are packages that must never reach the start path: the HTTP
// stack, the Docker API types, the CLI and what the CLI, API server,
// registry client and builder bring.
var forbidden = []string{
	"net/http",
	"crypto/tls",
	"github.com/moby/moby/api",
	"github.com/moby/buildkit",
	"github.com/google/go-containerregistry",
	"github.com/compose-spec/",
	"github.com/spf13/cobra",
	"github.com/spf13/pflag",
	"github.com/berth-dev/berth/internal/cli",
	"github.com/berth-dev/berth/internal/engine",
	"github.com/berth-dev/berth/internal/api",
	"github.com/berth-dev/berth/internal/registry",
	"github.com/berth-dev/berth/internal/build",
	"github.com/berth-dev/berth/internal/compose",
	"k8s.io/",
}

const self = "github.com/berth-dev/berth/cmd/berth-shim"

func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		p = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	return p
}

func TestShimDependencies(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", self).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, strings.TrimSuffix(f, "/")+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) {
				t.Errorf("%s links %s: the container start path must not (see cmd/internal/hidden)", self, d)
			}
		}
	}
	if len(deps) > maxDeps {
		t.Errorf("%s links %d packages, over its budget of %d: keep what the CLI, API or builder needs out of internal/runtime, internal/container and what they import", self, len(deps), maxDeps)
	}
	t.Logf("%d packages (budget %d)", len(deps), maxDeps)
}

func TestShimInitBudget(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "berth-shim")
	build := exec.Command(goTool(t), "build", "-o", bin, self)
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as shipped
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var times []float64
	for range initRuns {
		cmd := exec.Command(bin) // no command: it prints its usage, after the whole package init
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Run()
		pkgs, allocs, ms := parseInitTrace(t, stderr.Bytes())
		if pkgs == 0 {
			t.Fatalf("no init trace in %q", stderr.String())
		}
		if pkgs > maxInitPackages {
			t.Fatalf("%d packages of berth-shim run init work, over the budget of %d", pkgs, maxInitPackages)
		}
		if allocs > maxInitAllocs {
			t.Fatalf("berth-shim's package init makes %d allocations, over the budget of %d", allocs, maxInitAllocs)
		}
		times = append(times, ms)
	}
	slices.Sort(times)
	median := times[len(times)/2]
	if median > maxInitMillis {
		t.Errorf("berth-shim's package init takes %.2f ms (median of %d), over the budget of %.1f ms; GODEBUG=inittrace=1 shows by whom", median, initRuns, maxInitMillis)
	}
	t.Logf("package init: median %.3f ms of %v (budget %.1f ms)", median, times, maxInitMillis)
}

// parseInitTrace sums GODEBUG=inittrace=1 lines such as
// "init os @0.83 ms, 0.020 ms clock, 432 bytes, 9 allocs".
func parseInitTrace(t *testing.T, raw []byte) (pkgs, allocs int, ms float64) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 11 || f[0] != "init" || f[6] != "clock," || f[10] != "allocs" {
			continue
		}
		clock, err1 := strconv.ParseFloat(f[4], 64)
		n, err2 := strconv.Atoi(f[9])
		if err1 != nil || err2 != nil {
			t.Fatalf("unreadable init trace line %q", sc.Text())
		}
		pkgs++
		allocs += n
		ms += clock
	}
	return pkgs, allocs, ms
}
