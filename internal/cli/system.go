package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/filters"
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *app) systemCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "system", Short: "Manage berth", Args: noArgs, RunE: func(c *cobra.Command, _ []string) error { return c.Help() }}
	cmd.AddCommand(a.infoCommand(), a.eventsCommand(), a.systemDfCommand(), a.systemPruneCommand(), a.systemRestoreCommand())
	return cmd
}

func (a *app) versionCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the berth version information",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			sv := e.Version(ctx, Version)
			if format != "" {
				v := map[string]any{
					"Client": map[string]any{"Version": Version, "ApiVersion": engine.APIVersion, "GoVersion": sv.GoVersion, "Os": sv.Os, "Arch": sv.Arch},
					"Server": sv,
				}
				return formatEach(a.stdout, format, []any{v})
			}
			fmt.Fprintf(a.stdout, "Client:\n Version:           %s\n API version:       %s\n Go version:        %s\n OS/Arch:           %s/%s\n\n", Version, engine.APIVersion, sv.GoVersion, sv.Os, sv.Arch)
			fmt.Fprintf(a.stdout, "Server: berth (daemonless; the engine runs in each command)\n Engine:\n  Version:          %s\n  API version:      %s (minimum version %s)\n  Go version:       %s\n  OS/Arch:          %s/%s\n  Kernel:           %s\n", sv.Version, sv.APIVersion, sv.MinAPIVersion, sv.GoVersion, sv.Os, sv.Arch, sv.KernelVersion)
			for _, c := range sv.Components {
				fmt.Fprintf(a.stdout, " %s:\n  Version:          %s\n", c.Name, c.Version)
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

func (a *app) infoCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			info, err := e.Info(ctx, Version)
			if err != nil {
				return err
			}
			if format != "" {
				return formatEach(a.stdout, format, []any{info})
			}
			fmt.Fprintf(a.stdout, "Client:\n Version:    %s\n\nServer:\n", Version)
			fmt.Fprintf(a.stdout, " Containers: %d\n  Running: %d\n  Paused: %d\n  Stopped: %d\n Images: %d\n", info.Containers, info.ContainersRunning, info.ContainersPaused, info.ContainersStopped, info.Images)
			fmt.Fprintf(a.stdout, " Server Version: %s\n Storage Driver: %s\n Logging Driver: %s\n Cgroup Driver: %s\n Cgroup Version: %s\n", info.ServerVersion, info.Driver, info.LoggingDriver, info.CgroupDriver, info.CgroupVersion)
			fmt.Fprintf(a.stdout, " Runtimes: %s\n Default Runtime: %s\n Security Options:\n  seccomp\n   Profile: builtin\n", strings.Join(info.RuntimeNames, " "), info.DefaultRuntime)
			fmt.Fprintf(a.stdout, " Kernel Version: %s\n Operating System: %s\n OSType: %s\n Architecture: %s\n CPUs: %d\n Total Memory: %s\n Name: %s\n", info.KernelVersion, info.OperatingSystem, info.OSType, info.Architecture, info.NCPU, binarySize(float64(info.MemTotal)), info.Name)
			fmt.Fprintf(a.stdout, " Berth Root Dir: %s\n Berth Run Root: %s\n", info.DockerRootDir, info.RunRoot)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

func (a *app) eventsCommand() *cobra.Command {
	var req engine.EventsRequest
	var format string
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			req.Filters = flt.Args
			var tmpl *template.Template
			if format != "" {
				// Docker's templates see the message's Go fields
				// (.Status, .Actor.Attributes.name), not its JSON keys.
				if format == "json" {
					format = "{{json .}}"
				}
				var err error
				f := strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
				// As docker's CLI, the template is tried on an empty
				// message before any event comes: a bad one fails at once.
				if tmpl, err = template.New("").Funcs(templateFuncs).Parse(f); err == nil {
					err = tmpl.Execute(io.Discard, engine.EventMessage{})
				}
				if err != nil {
					return &templateError{msg: fmt.Sprintf("Error parsing format: %v", err), code: errdefs.ExitTemplate}
				}
			}
			return e.Events(ctx, req, func(m engine.EventMessage) error {
				if tmpl != nil {
					var buf bytes.Buffer
					if err := tmpl.Execute(&buf, m); err != nil {
						return fmt.Errorf("template: %v", err)
					}
					_, err := fmt.Fprintln(a.stdout, buf.String())
					return err
				}
				t := time.Unix(0, m.TimeNano).Local().Format("2006-01-02T15:04:05.000000000-07:00")
				var attrs []string
				for _, k := range slices.Sorted(maps.Keys(m.Actor.Attributes)) {
					attrs = append(attrs, k+"="+m.Actor.Attributes[k])
				}
				_, err := fmt.Fprintf(a.stdout, "%s %s %s %s (%s)\n", t, m.Type, m.Action, m.Actor.ID, strings.Join(attrs, ", "))
				return err
			})
		}),
	}
	cmd.Flags().StringVar(&req.Since, "since", "", "Show all events created since timestamp")
	cmd.Flags().StringVar(&req.Until, "until", "", "Stream events until this timestamp")
	cmd.Flags().StringVar(&format, "format", "", "Format the output using the given Go template")
	cmd.Flags().VarP(flt, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

var (
	dfHeaders      = map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
	dfImageHeaders = map[string]string{"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
		"Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS"}
	dfContainerHeaders = map[string]string{"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "LocalVolumes": "LOCAL VOLUMES",
		"Size": "SIZE", "RunningFor": "CREATED", "Status": "STATUS", "Names": "NAMES"}
	dfVolumeHeaders = map[string]string{"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}
)

type dfImageRow struct {
	Containers, CreatedAt, CreatedSince, Digest, ID, Repository, SharedSize, Size, Tag, UniqueSize, VirtualSize string
}

type dfContainerRow struct {
	Command, CreatedAt, ID, Image, Labels, LocalVolumes, Mounts, Names, Networks, Ports, RunningFor, Size, State, Status string
}

type dfVolumeRow struct {
	Driver, Labels, Links, Mountpoint, Name, Scope, Size string
}

func (a *app) systemDfCommand() *cobra.Command {
	var verbose bool
	var format string
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show berth disk usage",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			du, err := e.DiskUsage(ctx)
			if err != nil {
				return err
			}
			if verbose {
				return a.renderDfVerbose(du, format)
			}
			type dfRow struct{ Type, TotalCount, Active, Size, Reclaimable string }
			pct := func(r, t int64) string {
				if t == 0 {
					return humanSize(r)
				}
				return fmt.Sprintf("%s (%d%%)", humanSize(r), r*100/t)
			}
			rows := []dfRow{
				{"Images", fmt.Sprint(len(du.Images)), fmt.Sprint(du.ImagesActive), humanSize(du.LayersSize), pct(du.ImagesReclaimable, du.LayersSize)},
				{"Containers", fmt.Sprint(len(du.Containers)), fmt.Sprint(du.ContainersActive), humanSize(du.ContainersSize), pct(du.ContainersReclaimable, du.ContainersSize)},
				{"Local Volumes", fmt.Sprint(len(du.Volumes)), fmt.Sprint(du.VolumesActive), humanSize(du.VolumesSize), pct(du.VolumesReclaimable, du.VolumesSize)},
				{"Build Cache", "0", "0", "0B", "0B"},
			}
			if format == "" {
				format = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
			}
			return renderRows(a.stdout, format, rows, dfHeaders)
		}),
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Show detailed information on space usage")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	return cmd
}

// renderDfVerbose prints `system df -v`: a table per kind, as docker does.
func (a *app) renderDfVerbose(du *engine.DiskUsage, format string) error {
	now := time.Now()
	full := format != "" && format != "table" // docker's templates see whole IDs
	trunc := func(id string, n int) string {
		if full {
			return id
		}
		return strings.TrimPrefix(id, "sha256:")[:min(n, len(strings.TrimPrefix(id, "sha256:")))]
	}
	var images []dfImageRow
	for _, img := range du.Images {
		r := dfImageRow{
			Containers: fmt.Sprint(img.Containers), CreatedAt: img.CreatedAt.Local().Format("2006-01-02 15:04:05 -0700 MST"),
			CreatedSince: humanDuration(now.Sub(img.CreatedAt)) + " ago", Digest: "<none>", ID: trunc(img.ID, 12),
			Repository: "<none>", Tag: "<none>", SharedSize: humanSize4(img.SharedSize), Size: humanSize(img.Size),
			UniqueSize: humanSize4(img.Size - img.SharedSize), VirtualSize: humanSize4(img.Size),
		}
		if len(img.RepoTags) > 0 {
			r.Repository, r.Tag = splitRepoTag(img.RepoTags[0])
		}
		if len(img.RepoDigests) > 0 {
			_, r.Digest, _ = strings.Cut(img.RepoDigests[0], "@")
		}
		images = append(images, r)
	}
	var ctrs []dfContainerRow
	for _, c := range du.Containers {
		var mounts []string
		vols := 0
		for _, m := range c.Mounts {
			if m.Type == "volume" {
				vols++
			}
			n := m.Name
			if n == "" {
				n = m.Source
			}
			mounts = append(mounts, ellipsis(n, 15))
		}
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
			labels = append(labels, k+"="+c.Labels[k])
		}
		ctrs = append(ctrs, dfContainerRow{
			Command: strconv.Quote(ellipsis(c.Command, 20)), CreatedAt: c.CreatedAt.Local().Format("2006-01-02 15:04:05 -0700 MST"),
			ID: trunc(c.ID, 12), Image: c.Image, Labels: strings.Join(labels, ","), LocalVolumes: fmt.Sprint(vols),
			Mounts: strings.Join(mounts, ","), Names: strings.TrimPrefix(c.Names[0], "/"), Networks: strings.Join(c.Networks, ","),
			RunningFor: humanDuration(now.Sub(c.CreatedAt)) + " ago", Size: humanSize4(c.SizeRw), State: c.State, Status: c.Status,
		})
	}
	var vols []dfVolumeRow
	for _, v := range du.Volumes {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(v.Labels)) {
			labels = append(labels, k+"="+v.Labels[k])
		}
		vols = append(vols, dfVolumeRow{Driver: v.Driver, Labels: strings.Join(labels, ","), Links: fmt.Sprint(v.UsageData.RefCount),
			Mountpoint: v.Mountpoint, Name: v.Name, Scope: v.Scope, Size: humanSize4(v.UsageData.Size)})
	}
	if format != "" && format != "table" {
		obj := map[string]any{"Images": images, "Containers": ctrs, "Volumes": vols, "BuildCache": []any{}}
		if format == "json" || format == "{{json .}}" {
			return printJSONLine(a.stdout, obj)
		}
		return formatEach(a.stdout, format, []any{obj})
	}
	fmt.Fprint(a.stdout, "Images space usage:\n\n")
	if err := renderRows(a.stdout, "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", images, dfImageHeaders); err != nil {
		return err
	}
	fmt.Fprint(a.stdout, "\nContainers space usage:\n\n")
	if err := renderRows(a.stdout, "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}", ctrs, dfContainerHeaders); err != nil {
		return err
	}
	fmt.Fprint(a.stdout, "\nLocal Volumes space usage:\n\n")
	if err := renderRows(a.stdout, "table {{.Name}}\t{{.Links}}\t{{.Size}}", vols, dfVolumeHeaders); err != nil {
		return err
	}
	fmt.Fprint(a.stdout, "\nBuild cache usage: 0B\n\nCACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n")
	return nil
}

func (a *app) systemPruneCommand() *cobra.Command {
	var req engine.SystemPruneRequest
	var force bool
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused data",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			req.Filters = flt.Args
			warning := "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n"
			if req.Volumes {
				warning += "  - all anonymous volumes not used by at least one container\n"
			}
			if req.All {
				warning += "  - all images without at least one container associated to them\n"
			} else {
				warning += "  - all dangling images\n"
			}
			if req.Filters.Len() > 0 {
				warning += "\n  Items to be pruned will be filtered with:\n"
				for _, k := range req.Filters.Keys() {
					for _, v := range req.Filters.Get(k) {
						warning += "  - " + k + "=" + v + "\n"
					}
				}
			}
			if !force && !a.confirm(warning+"\nAre you sure you want to continue? [y/N] ") {
				return nil
			}
			rep, err := e.PruneSystem(ctx, req)
			if rep != nil {
				a.printContainerPrune(rep.Containers)
				if rep.Networks != nil && len(rep.Networks.NetworksDeleted) > 0 {
					fmt.Fprintln(a.stdout, "Deleted Networks:")
					for _, n := range rep.Networks.NetworksDeleted {
						fmt.Fprintln(a.stdout, n)
					}
					fmt.Fprintln(a.stdout)
				}
				a.printVolumePrune(rep.Volumes)
				a.printImagePrune(rep.Images)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(int64(rep.SpaceReclaimed())))
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&req.All, "all", "a", false, "Remove all unused images not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().BoolVar(&req.Volumes, "volumes", false, "Prune anonymous volumes")
	cmd.Flags().Var(flt, "filter", "Provide filter values (e.g. \"label=<key>=<value>\")")
	return cmd
}

func (a *app) printContainerPrune(rep *engine.ContainerPruneReport) {
	if rep == nil || len(rep.ContainersDeleted) == 0 {
		return
	}
	fmt.Fprintln(a.stdout, "Deleted Containers:")
	for _, id := range rep.ContainersDeleted {
		fmt.Fprintln(a.stdout, id)
	}
	fmt.Fprintln(a.stdout)
}

func (a *app) printVolumePrune(rep *engine.VolumePruneReport) {
	if rep == nil || len(rep.VolumesDeleted) == 0 {
		return
	}
	fmt.Fprintln(a.stdout, "Deleted Volumes:")
	for _, n := range rep.VolumesDeleted {
		fmt.Fprintln(a.stdout, n)
	}
	fmt.Fprintln(a.stdout)
}

func (a *app) printImagePrune(rep *engine.ImagePruneReport) {
	if rep == nil || len(rep.ImagesDeleted) == 0 {
		return
	}
	fmt.Fprintln(a.stdout, "Deleted Images:")
	for _, d := range rep.ImagesDeleted {
		if d.Untagged != "" {
			fmt.Fprintf(a.stdout, "untagged: %s\n", d.Untagged)
		}
		if d.Deleted != "" {
			fmt.Fprintf(a.stdout, "deleted: %s\n", d.Deleted)
		}
	}
	fmt.Fprintln(a.stdout)
}

// systemRestoreCommand is what berth runs at boot (contrib/berth-restore.service):
// berth has no daemon whose start would restart containers, so this does.
func (a *app) systemRestoreCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "restore",
		Short: "Restart containers whose restart policy asks for it (run at boot)",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			started, err := e.SystemRestore(ctx)
			for _, id := range started {
				fmt.Fprintln(a.stdout, id)
			}
			return err
		}),
	}
}

// humanSize4 renders bytes with four significant digits, as docker's
// units.HumanSize (the unique and shared sizes of df -v).
func humanSize4(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return strconv.FormatFloat(f, 'g', 4, 64) + units[i]
}

// splitRepoTag splits a familiar "name:tag" reference.
func splitRepoTag(ref string) (string, string) {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "<none>"
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", raw)
	return err
}
