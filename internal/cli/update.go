package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
)

// updateCommand is docker update: new resource limits and restart policy
// for containers, running or not.
func (a *app) updateCommand() *cobra.Command {
	var (
		req                                     engine.UpdateRequest
		cpus                                    float64
		memory, swap, reservation, kernelMemory string
		pidsLimit                               int64
		restart                                 string
	)
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Update configuration of one or more containers",
		Args:  minArgs(1),
	}
	fl := cmd.Flags()
	fl.Uint16Var(&req.BlkioWeight, "blkio-weight", 0, "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)")
	fl.Int64Var(&req.CPUPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fl.Int64Var(&req.CPUQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fl.Int64VarP(&req.CPUShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.Float64Var(&cpus, "cpus", 0, "Number of CPUs")
	fl.StringVar(&req.CpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fl.StringVar(&req.CpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fl.StringVarP(&memory, "memory", "m", "", "Memory limit")
	fl.StringVar(&reservation, "memory-reservation", "", "Memory soft limit")
	fl.StringVar(&swap, "memory-swap", "", "Swap limit equal to memory plus swap: -1 to enable unlimited swap")
	fl.StringVar(&kernelMemory, "kernel-memory", "", "Kernel memory limit (deprecated)")
	fl.MarkHidden("kernel-memory")
	fl.Int64Var(&pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fl.StringVar(&restart, "restart", "", "Restart policy to apply when a container exits")
	own := pflag.NewFlagSet("update", pflag.ContinueOnError)
	own.AddFlagSet(fl) // the update flags alone, before the global ones merge in
	cmd.RunE = a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
		// docker's CLI checks these before asking the daemon: exit 1.
		changed := 0
		own.VisitAll(func(f *pflag.Flag) {
			if fl.Changed(f.Name) {
				changed++
			}
		})
		if changed == 0 {
			return updateExit(a, errdefs.InvalidArgument("you must provide one or more flags when using this command"))
		}
		for _, b := range []struct {
			flag, val string
			dst       *int64
		}{{"memory", memory, &req.Memory}, {"memory-reservation", reservation, &req.MemoryReservation}, {"kernel-memory", kernelMemory, &req.KernelMemory}, {"memory-swap", swap, &req.MemorySwap}} {
			if b.val == "" {
				continue
			}
			if b.flag == "memory-swap" && b.val == "-1" {
				*b.dst = -1
				continue
			}
			n, err := engine.ParseBytes(b.val)
			if err != nil {
				return usageError{fmt.Errorf("invalid argument %q for \"--%s\" flag: %v", b.val, b.flag, err)}
			}
			*b.dst = n
		}
		if cpus != 0 {
			req.NanoCPUs = int64(cpus*1e9 + 0.5)
		}
		if fl.Changed("pids-limit") {
			req.PidsLimit = &pidsLimit
		}
		if restart != "" {
			name, count, hasCount := strings.Cut(restart, ":")
			req.RestartPolicy.Name = name
			if hasCount {
				n, err := strconv.Atoi(count)
				if err != nil {
					return updateExit(a, errdefs.InvalidArgument("invalid restart policy format: maximum retry count must be an integer"))
				}
				req.RestartPolicy.MaximumRetryCount = n
			}
		}
		var errs []error
		var warnings []string
		for _, ref := range args {
			res, err := e.ContainerUpdate(ctx, ref, req)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintln(a.stdout, ref)
			warnings = append(warnings, res.Warnings...)
		}
		if len(warnings) > 0 {
			fmt.Fprintln(a.stdout, strings.Join(warnings, "\n"))
		}
		return updateExit(a, joinErrors(errs))
	})
	return cmd
}

// updateExit reports a failed update as docker's CLI does: the messages
// and exit status 1, whatever the error.
func updateExit(a *app, err error) error {
	if err == nil {
		return nil
	}
	fmt.Fprintf(a.stderr, "Error: %s\n", err)
	return &errdefs.ExitStatus{Code: 1}
}
