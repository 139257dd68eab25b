package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/volume"
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func volumeEvent(action, name string) container.Event {
	return container.Event{Type: "volume", Action: action, ID: name, Attributes: map[string]string{"driver": "local"}}
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
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := map[string]any{
				"Client": map[string]any{"Version": Version, "ApiVersion": APIVersion, "GoVersion": goruntime.Version(), "Os": goruntime.GOOS, "Arch": goruntime.GOARCH},
				"Server": map[string]any{"Version": Version, "ApiVersion": APIVersion, "MinAPIVersion": "1.24", "GoVersion": goruntime.Version(), "Os": goruntime.GOOS, "Arch": goruntime.GOARCH, "KernelVersion": kernelVersion()},
			}
			if format != "" {
				return formatEach(a.stdout, format, []any{v})
			}
			fmt.Fprintf(a.stdout, "Client:\n Version:           %s\n API version:       %s\n Go version:        %s\n OS/Arch:           %s/%s\n\n", Version, APIVersion, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
			fmt.Fprintf(a.stdout, "Server: berth (daemonless; the engine runs in each command)\n Engine:\n  Version:          %s\n  API version:      %s (minimum version 1.24)\n  Go version:       %s\n  OS/Arch:          %s/%s\n  Kernel:           %s\n", Version, APIVersion, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH, kernelVersion())
			fmt.Fprintf(a.stdout, " %s:\n  Version:          %s\n", a.cfg.Runtime, runtimeVersion(a.cfg.Runtime))
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

func kernelVersion() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func runtimeVersion(bin string) string {
	if bin == runtime.BuiltinName {
		return Version + " (built in)"
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unavailable (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// availableRuntimes lists the built-in runtime, the OCI runtimes found
// on PATH, and the configured one.
func availableRuntimes(configured string) []string {
	out := []string{runtime.BuiltinName}
	for _, name := range []string{"runc", "crun"} {
		if _, err := exec.LookPath(name); err == nil {
			out = append(out, name)
		}
	}
	if !slices.Contains(out, configured) {
		out = append(out, configured)
	}
	return out
}

func runtimesJSON(configured string) map[string]any {
	out := map[string]any{}
	for _, name := range availableRuntimes(configured) {
		out[name] = map[string]string{"path": name}
	}
	return out
}

func cgroupVersion() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "2"
	}
	return "1"
}

func (a *app) infoCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			ctrs, err := e.Containers.List(ctx)
			if err != nil {
				return err
			}
			imgs, err := e.Images.List(ctx)
			if err != nil {
				return err
			}
			var running, paused, stopped int
			for _, c := range ctrs {
				switch {
				case c.State.Paused:
					paused++
				case c.State.Running:
					running++
				default:
					stopped++
				}
			}
			host, _ := os.Hostname()
			var si unix.Sysinfo_t
			unix.Sysinfo(&si)
			info := map[string]any{
				"Containers": len(ctrs), "ContainersRunning": running, "ContainersPaused": paused, "ContainersStopped": stopped,
				"Images": len(imgs), "Driver": "overlay2", "DockerRootDir": e.Config.Root, "LoggingDriver": "json-file",
				"CgroupDriver": "cgroupfs", "CgroupVersion": cgroupVersion(), "KernelVersion": kernelVersion(),
				"OperatingSystem": osName(), "OSType": "linux", "Architecture": goruntime.GOARCH, "NCPU": goruntime.NumCPU(),
				"MemTotal": int64(si.Totalram) * int64(si.Unit), "Name": host, "ServerVersion": Version,
				"DefaultRuntime": e.Config.Runtime, "Runtimes": runtimesJSON(e.Config.Runtime), "SecurityOptions": []string{"name=seccomp,profile=builtin"},
			}
			if format != "" {
				return formatEach(a.stdout, format, []any{info})
			}
			fmt.Fprintf(a.stdout, "Client:\n Version:    %s\n\nServer:\n", Version)
			fmt.Fprintf(a.stdout, " Containers: %d\n  Running: %d\n  Paused: %d\n  Stopped: %d\n Images: %d\n", len(ctrs), running, paused, stopped, len(imgs))
			fmt.Fprintf(a.stdout, " Server Version: %s\n Storage Driver: overlay2\n Logging Driver: json-file\n Cgroup Driver: cgroupfs\n Cgroup Version: %s\n", Version, cgroupVersion())
			fmt.Fprintf(a.stdout, " Runtimes: %s\n Default Runtime: %s\n Security Options:\n  seccomp\n   Profile: builtin\n", strings.Join(availableRuntimes(e.Config.Runtime), " "), e.Config.Runtime)
			fmt.Fprintf(a.stdout, " Kernel Version: %s\n Operating System: %s\n OSType: linux\n Architecture: %s\n CPUs: %d\n Total Memory: %s\n Name: %s\n", kernelVersion(), osName(), goruntime.GOARCH, goruntime.NumCPU(), binarySize(float64(si.Totalram)*float64(si.Unit)), host)
			fmt.Fprintf(a.stdout, " Berth Root Dir: %s\n Berth Run Root: %s\n", e.Config.Root, e.Config.RunRoot)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

func osName() string {
	raw, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

func (a *app) eventsCommand() *cobra.Command {
	var since, until, format string
	var filters []string
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Get real time events from the server",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			var err error
			opts := container.EventsOptions{Follow: true}
			now := time.Now()
			if since != "" {
				if opts.Since, err = parseTimestamp(since, now); err != nil {
					return err
				}
			}
			if until != "" {
				if opts.Until, err = parseTimestamp(until, now); err != nil {
					return err
				}
			}
			byKey := map[string][]string{}
			for _, f := range filters {
				k, v, ok := strings.Cut(f, "=")
				if !ok {
					return errdefs.InvalidArgument("bad format of filter (expected name=value): %s", f)
				}
				switch k {
				case "container", "event", "image", "label", "type", "volume":
				default:
					return errdefs.InvalidArgument("invalid filter '%s'", k)
				}
				byKey[k] = append(byKey[k], v)
			}
			opts.Filter = func(ev container.Event) bool {
				for k, vals := range byKey {
					ok := false
					for _, v := range vals {
						switch k {
						case "type":
							ok = ok || ev.Type == v
						case "event":
							ok = ok || ev.Action == v || strings.HasPrefix(ev.Action, v+":")
						case "container":
							ok = ok || ev.Type == "container" && (strings.HasPrefix(ev.ID, v) || ev.Attributes["name"] == v)
						case "image":
							ok = ok || ev.Attributes["image"] == v || ev.Type == "image" && ev.ID == v
						case "volume":
							ok = ok || ev.Type == "volume" && ev.ID == v
						case "label":
							lk, lv, hasV := strings.Cut(v, "=")
							got, present := ev.Attributes[lk]
							ok = ok || present && (!hasV || got == lv)
						}
					}
					if !ok {
						return false
					}
				}
				return true
			}
			return e.Containers.Events(ctx, opts, func(ev container.Event) error {
				if format != "" {
					return formatEach(a.stdout, format, []any{ev})
				}
				t := time.Unix(0, ev.TimeNano).Local().Format("2006-01-02T15:04:05.000000000-07:00")
				var attrs []string
				for _, k := range sortedKeys(ev.Attributes) {
					attrs = append(attrs, k+"="+ev.Attributes[k])
				}
				_, err := fmt.Fprintf(a.stdout, "%s %s %s %s (%s)\n", t, ev.Type, ev.Action, ev.ID, strings.Join(attrs, ", "))
				return err
			})
		}),
	}
	cmd.Flags().StringVar(&since, "since", "", "Show all events created since timestamp")
	cmd.Flags().StringVar(&until, "until", "", "Stream events until this timestamp")
	cmd.Flags().StringVar(&format, "format", "", "Format the output using the given Go template")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided")
	return cmd
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func (a *app) systemDfCommand() *cobra.Command {
	var verbose bool
	var format string
	cmd := &cobra.Command{
		Use:   "df [OPTIONS]",
		Short: "Show berth disk usage",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			imgs, err := e.Images.List(ctx)
			if err != nil {
				return err
			}
			ctrs, err := e.Containers.List(ctx)
			if err != nil {
				return err
			}
			vols, err := e.Volumes.List(ctx)
			if err != nil {
				return err
			}
			usedImg := map[string]bool{}
			var ctrSize, ctrReclaim int64
			var activeCtr int
			for _, c := range ctrs {
				usedImg[c.Image] = true
				sz := volume.DirSize(e.Snapshots.UpperDir(c.ID))
				ctrSize += sz
				if c.State.Running || c.State.Paused {
					activeCtr++
				} else {
					ctrReclaim += sz
				}
			}
			// Layers are shared between images: count each snapshot once.
			layerSize := map[string]int64{}
			usedLayers := map[string]bool{}
			var activeImg int
			for _, img := range imgs {
				for _, l := range img.Layers {
					layerSize[l.ChainID.String()] = l.Size
					if usedImg[img.ID.String()] {
						usedLayers[l.ChainID.String()] = true
					}
				}
				if usedImg[img.ID.String()] {
					activeImg++
				}
			}
			var imgSize, imgReclaim int64
			for ch, sz := range layerSize {
				imgSize += sz
				if !usedLayers[ch] {
					imgReclaim += sz
				}
			}
			usedVol := map[string]bool{}
			for _, c := range ctrs {
				for _, m := range c.Mounts {
					usedVol[m.Name] = true
				}
			}
			var volSize, volReclaim int64
			var activeVol int
			for _, v := range vols {
				sz := volume.DirSize(v.Mountpoint)
				volSize += sz
				if usedVol[v.Name] {
					activeVol++
				} else {
					volReclaim += sz
				}
			}
			type dfRow struct{ Type, TotalCount, Active, Size, Reclaimable string }
			pct := func(r, t int64) string {
				if t == 0 {
					return humanSize(r)
				}
				return fmt.Sprintf("%s (%d%%)", humanSize(r), r*100/t)
			}
			rows := []dfRow{
				{"Images", fmt.Sprint(len(imgs)), fmt.Sprint(activeImg), humanSize(imgSize), pct(imgReclaim, imgSize)},
				{"Containers", fmt.Sprint(len(ctrs)), fmt.Sprint(activeCtr), humanSize(ctrSize), pct(ctrReclaim, ctrSize)},
				{"Local Volumes", fmt.Sprint(len(vols)), fmt.Sprint(activeVol), humanSize(volSize), pct(volReclaim, volSize)},
				{"Build Cache", "0", "0", "0B", "0B"},
			}
			if format == "" {
				format = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
			}
			return renderRows(a.stdout, format, rows, map[string]string{"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"})
		}),
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Show detailed information on space usage")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	return cmd
}

func (a *app) systemPruneCommand() *cobra.Command {
	var all, force, volumes bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused data",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			warning := "WARNING! This will remove:\n  - all stopped containers\n"
			if volumes {
				warning += "  - all anonymous volumes not used by at least one container\n"
			}
			if all {
				warning += "  - all images without at least one container associated to them\n"
			} else {
				warning += "  - all dangling images\n"
			}
			if !force && !a.confirm(warning+"\nAre you sure you want to continue? [y/N] ") {
				return nil
			}
			total, err := a.pruneContainers(ctx, filters)
			if err != nil {
				return err
			}
			if volumes {
				removed, reclaimed, err := e.Volumes.Prune(ctx, false, nil)
				if err != nil {
					return err
				}
				if len(removed) > 0 {
					fmt.Fprintln(a.stdout, "Deleted Volumes:")
					for _, n := range removed {
						fmt.Fprintln(a.stdout, n)
					}
					fmt.Fprintln(a.stdout)
				}
				total += reclaimed
			}
			n, err := a.pruneImages(ctx, all)
			if err != nil {
				return err
			}
			total += n
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(total))
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "Provide filter values (e.g. \"label=<key>=<value>\")")
	return cmd
}

// systemRestoreCommand is what berth runs at boot (contrib/berth-restore.service):
// berth has no daemon whose start would restart containers, so this does.
func (a *app) systemRestoreCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "restore",
		Short: "Restart containers whose restart policy asks for it (run at boot)",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			started, err := e.Containers.Restore(ctx)
			for _, id := range started {
				fmt.Fprintln(a.stdout, id)
			}
			return err
		}),
	}
}
