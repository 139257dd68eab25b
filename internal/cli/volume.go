package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/filters"
)

func (a *app) volumeCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "volume", Short: "Manage volumes", Args: noArgs, RunE: func(c *cobra.Command, _ []string) error { return c.Help() }}
	cmd.AddCommand(a.volumeCreateCommand(), a.volumeLsCommand(), a.volumeInspectCommand(), a.volumeRmCommand(), a.volumePruneCommand())
	return cmd
}

func (a *app) volumeCreateCommand() *cobra.Command {
	var opts engine.VolumeCreateRequest
	var labels, driverOpts []string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  rangeArgs(0, 1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			var err error
			if len(args) == 1 {
				if opts.Name != "" && opts.Name != args[0] {
					return usageError{fmt.Errorf("conflicting options: either specify --name or provide positional arg, not both")}
				}
				opts.Name = args[0]
			}
			if opts.Name == "" {
				opts.Name = randomHex(32)
			}
			if opts.Labels, err = readLabels(nil, labels); err != nil {
				return err
			}
			for _, o := range driverOpts {
				k, v, _ := strings.Cut(o, "=")
				if opts.DriverOpts == nil {
					opts.DriverOpts = map[string]string{}
				}
				opts.DriverOpts[k] = v
			}
			v, err := e.VolumeCreate(ctx, opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, v.Name)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&opts.Driver, "driver", "d", "local", "Specify volume driver name")
	cmd.Flags().StringVar(&opts.Name, "name", "", "Specify volume name")
	cmd.Flags().MarkHidden("name")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "Set metadata for a volume")
	cmd.Flags().StringArrayVarP(&driverOpts, "opt", "o", nil, "Set driver specific options")
	return cmd
}

type volumeRow struct {
	Name       string `json:"Name"`
	Driver     string `json:"Driver"`
	Mountpoint string `json:"Mountpoint"`
	Labels     string `json:"Labels"`
	Scope      string `json:"Scope"`
	Size       string `json:"Size"`
	Links      string `json:"Links"`
	// Cluster volumes' fields, "N/A" for local ones as in docker's rows.
	Availability string `json:"Availability"`
	Group        string `json:"Group"`
	Status       string `json:"Status"`
}

func (a *app) volumeLsCommand() *cobra.Command {
	var quiet bool
	var format string
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			vols, err := e.ListVolumes(ctx, engine.VolumeListRequest{Filters: flt.Args})
			if err != nil {
				return err
			}
			var rows []volumeRow
			for _, v := range vols {
				var ls []string
				for _, k := range slices.Sorted(maps.Keys(v.Labels)) {
					ls = append(ls, k+"="+v.Labels[k])
				}
				rows = append(rows, volumeRow{Name: v.Name, Driver: v.Driver, Mountpoint: v.Mountpoint, Labels: strings.Join(ls, ","), Scope: v.Scope, Size: "N/A", Links: "N/A", Availability: "N/A", Group: "N/A", Status: "N/A"})
			}
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(a.stdout, r.Name)
				}
				return nil
			}
			if format == "" || strings.TrimSpace(format) == "table" {
				format = "table {{.Driver}}\t{{.Name}}"
			}
			return renderRows(a.stdout, format, rows, map[string]string{"Name": "VOLUME NAME", "Driver": "DRIVER", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Scope": "SCOPE", "Size": "SIZE", "Links": "LINKS", "Availability": "AVAILABILITY", "Group": "GROUP", "Status": "STATUS"})
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	cmd.Flags().VarP(flt, "filter", "f", "Provide filter values (e.g. \"dangling=true\")")
	return cmd
}

func (a *app) volumeInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return a.inspectEach(format, args, func(name string) (any, error) { return e.VolumeInspect(ctx, name) })
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

func (a *app) volumeRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return a.forEach(args, func(name string) error {
				return e.VolumeRemove(ctx, name, force)
			})
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of one or more volumes")
	return cmd
}

func (a *app) volumePruneCommand() *cobra.Command {
	var force, all bool
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused local volumes",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			f := flt.Args.Clone()
			if all {
				f.Add("all", "true")
			}
			warning := "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
			if all {
				warning = "WARNING! This will remove all local volumes not used by at least one container.\n"
			}
			if !force && !a.confirm(warning+"Are you sure you want to continue? [y/N] ") {
				return nil
			}
			rep, err := e.PruneVolumes(ctx, f)
			if rep != nil {
				a.printVolumePrune(rep)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(int64(rep.SpaceReclaimed)))
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	cmd.Flags().Var(flt, "filter", "Provide filter values (e.g. \"label=<label>\")")
	return cmd
}
