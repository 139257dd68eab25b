package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/testutil"
)

// BenchmarkRuncAdapter times create+start+wait+delete of /bin/true
// through berth's runc adapter (spec generation included) and, in the
// same run, with runc's own command line on the same spec; it reports
// both and their ratio. (It was a test of the runtime package; timings
// belong here.)
//
//	go test -run '^$' -bench RuncAdapter -benchtime 10x ./bench/
func BenchmarkRuncAdapter(b *testing.B) {
	testutil.RequiresRoot(b)
	runcBin := testutil.RequiresBinary(b, "runc")
	// The container's init is a child of the runtime, re-parented to us.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rootfs := filepath.Join(b.TempDir(), "rootfs")
	testutil.BusyboxRootfs(b, rootfs)
	opts := runtime.SpecOptions{Hostname: "bench", Rootfs: rootfs, Args: []string{"true"}, NetworkMode: "none"}
	rc := &runtime.Binary{Binary: runcBin, Root: filepath.Join(b.TempDir(), "runc")}
	rawBundle := b.TempDir()
	spec, err := runtime.Generate(opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := runtime.WriteBundle(rawBundle, spec); err != nil {
		b.Fatal(err)
	}
	readPid := func(path string) int {
		raw, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
		return pid
	}
	runc := func(args ...string) {
		// No output capture: a created container's init inherits runc's
		// stdio and would hold a capturing pipe open.
		if err := exec.Command(runcBin, append([]string{"--root", rc.Root}, args...)...).Run(); err != nil {
			b.Fatalf("runc %v: %v", args, err)
		}
	}
	var adapter, raw float64
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("bench-adapter-%d-%d", os.Getpid(), i)
		bundle := b.TempDir()
		start := time.Now()
		spec, err := runtime.Generate(opts)
		if err != nil {
			b.Fatal(err)
		}
		if err := rc.WriteBundle(bundle, spec); err != nil {
			b.Fatal(err)
		}
		pidFile := filepath.Join(bundle, "pid")
		if err := rc.Create(ctx, id, bundle, pidFile, runtime.IO{}); err != nil {
			b.Fatal(err)
		}
		if err := rc.Start(ctx, id); err != nil {
			b.Fatal(err)
		}
		runtime.WaitPid(readPid(pidFile))
		if err := rc.Delete(ctx, id, false); err != nil {
			b.Fatal(err)
		}
		adapter += float64(time.Since(start))

		id = fmt.Sprintf("bench-raw-%d-%d", os.Getpid(), i)
		pidFile = filepath.Join(rawBundle, "pid")
		start = time.Now()
		runc("create", "--bundle", rawBundle, "--pid-file", pidFile, id)
		runc("start", id)
		runtime.WaitPid(readPid(pidFile))
		runc("delete", id)
		raw += float64(time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(adapter/float64(b.N)/1e6, "adapter-ms/op")
	b.ReportMetric(raw/float64(b.N)/1e6, "runc-ms/op")
	if raw > 0 {
		b.ReportMetric(adapter/raw, "ratio")
	}
}
