package cli

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
)

// psRow is one row of `ps`, with docker's template field names.
type psRow struct {
	ID         string `json:"ID"`
	Image      string `json:"Image"`
	Command    string `json:"Command"`
	CreatedAt  string `json:"CreatedAt"`
	RunningFor string `json:"RunningFor"`
	Ports      string `json:"Ports"`
	State      string `json:"State"`
	Status     string `json:"Status"`
	Size       string `json:"Size"`
	Names      string `json:"Names"`
	Labels     string `json:"Labels"`
	Mounts     string `json:"Mounts"`
	Networks   string `json:"Networks"`

	labels map[string]string
}

// Label returns one label's value, as docker's {{.Label "key"}}.
func (r psRow) Label(key string) string { return r.labels[key] }

var psHeaders = map[string]string{
	"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
	"Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS",
	"Mounts": "MOUNTS", "Networks": "NETWORKS", "Label": "LABEL",
}

func (a *app) psCommand() *cobra.Command {
	var all, quiet, latest, size, noTrunc bool
	var last int
	var format string
	var filters []string
	cmd := &cobra.Command{
		Use:     "ps [OPTIONS]",
		Aliases: []string{"ls", "list"},
		Short:   "List containers",
		Args:    noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			match, err := parsePsFilters(ctx, e, filters)
			if err != nil {
				return err
			}
			ctrs, err := e.Containers.List(ctx)
			if err != nil {
				return err
			}
			if latest {
				last = 1
			}
			if last > 0 || len(filters) > 0 && hasStatusFilter(filters) {
				all = true
			}
			now := time.Now()
			var rows []psRow
			for _, c := range ctrs {
				if !all && !c.State.Running && !c.State.Restarting && !c.State.Paused {
					continue
				}
				if !match(c) {
					continue
				}
				if last > 0 && len(rows) >= last {
					break
				}
				rows = append(rows, a.psRowOf(e, c, now, noTrunc, size))
			}
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(a.stdout, r.ID)
				}
				return nil
			}
			if format == "" {
				format = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
				if size {
					format += "\t{{.Size}}"
				}
			} else if format == "table" {
				format = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
			}
			return renderRows(a.stdout, format, rows, psHeaders)
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	fl.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	fl.IntVarP(&last, "last", "n", -1, "Show n last created containers (includes all states)")
	fl.BoolVarP(&size, "size", "s", false, "Display total file sizes")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.StringVar(&format, "format", "", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "Filter output based on conditions provided")
	return cmd
}

func hasStatusFilter(filters []string) bool {
	for _, f := range filters {
		if strings.HasPrefix(f, "status=") || strings.HasPrefix(f, "exited=") {
			return true
		}
	}
	return false
}

func (a *app) psRowOf(e *engine.Engine, c *container.Container, now time.Time, noTrunc, size bool) psRow {
	id := c.ID
	cmdline := engine.ContainerCommand(c.Path, c.Args)
	if !noTrunc {
		id = id[:12]
		cmdline = ellipsis(cmdline, 20)
	}
	img := c.Config.Image // docker shows the image as the user named it
	var labels []string
	for k, v := range c.Config.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	var mounts []string
	for _, m := range c.Mounts {
		n := m.Name
		if n == "" {
			n = m.Source
		}
		if !noTrunc {
			n = ellipsis(n, 15)
		}
		mounts = append(mounts, n)
	}
	r := psRow{
		ID: id, Image: img, Command: strconv.Quote(cmdline),
		CreatedAt:  c.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: humanDuration(now.Sub(c.Created)) + " ago",
		State:      c.State.Status, Status: statusText(c, now), Names: c.ShortName(),
		Labels: strings.Join(labels, ","), Mounts: strings.Join(mounts, ","), Networks: c.HostConfig.NetworkMode,
		labels: c.Config.Labels,
	}
	if size {
		if rw, rootfs, err := e.ContainerSize(context.Background(), c); err == nil {
			r.Size = fmt.Sprintf("%s (virtual %s)", humanSize(rw), humanSize(rootfs))
		}
	}
	return r
}

// statusText is docker's STATUS column.
func statusText(c *container.Container, now time.Time) string {
	st := c.State
	switch {
	case st.Restarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, humanDuration(now.Sub(container.ParseTime(st.FinishedAt))))
	case st.Running:
		s := "Up " + humanDuration(now.Sub(container.ParseTime(st.StartedAt)))
		if st.Paused {
			s += " (Paused)"
		} else if st.Health != nil {
			switch st.Health.Status {
			case "starting":
				s += " (health: starting)"
			default:
				s += " (" + st.Health.Status + ")"
			}
		}
		return s
	case st.Status == "removing":
		return "Removal In Progress"
	case st.Dead:
		return "Dead"
	case st.Status == "created" || container.ParseTime(st.StartedAt).IsZero():
		return "Created"
	}
	return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, humanDuration(now.Sub(container.ParseTime(st.FinishedAt))))
}

// parsePsFilters compiles ps --filter values; filters of one key are ORed,
// different keys ANDed, like docker.
func parsePsFilters(ctx context.Context, e *engine.Engine, filters []string) (func(*container.Container) bool, error) {
	byKey := map[string][]string{}
	for _, kv := range filters {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, errdefs.InvalidArgument("bad format of filter (expected name=value): %s", kv)
		}
		byKey[k] = append(byKey[k], v)
	}
	var preds []func(*container.Container) bool
	for k, vals := range byKey {
		switch k {
		case "status":
			for _, v := range vals {
				switch v {
				case "created", "restarting", "running", "removing", "paused", "exited", "dead":
				default:
					return nil, errdefs.InvalidArgument("invalid filter 'status=%s'", v)
				}
			}
			preds = append(preds, func(c *container.Container) bool { return containsStr(vals, c.State.Status) })
		case "name":
			var res []*regexp.Regexp
			for _, v := range vals {
				re, err := regexp.Compile(v)
				if err != nil {
					return nil, errdefs.InvalidArgument("invalid filter 'name=%s': %v", v, err)
				}
				res = append(res, re)
			}
			preds = append(preds, func(c *container.Container) bool {
				for _, re := range res {
					if re.MatchString(c.ShortName()) {
						return true
					}
				}
				return false
			})
		case "id":
			preds = append(preds, func(c *container.Container) bool {
				for _, v := range vals {
					if strings.HasPrefix(c.ID, v) {
						return true
					}
				}
				return false
			})
		case "label":
			preds = append(preds, func(c *container.Container) bool { return matchLabels(vals, c.Config.Labels) })
		case "exited":
			var codes []int
			for _, v := range vals {
				n, err := strconv.Atoi(v)
				if err != nil {
					return nil, errdefs.InvalidArgument("invalid filter 'exited=%s'", v)
				}
				codes = append(codes, n)
			}
			preds = append(preds, func(c *container.Container) bool {
				if c.State.Status != "exited" {
					return false
				}
				for _, n := range codes {
					if c.State.ExitCode == n {
						return true
					}
				}
				return false
			})
		case "ancestor":
			ids := map[string]bool{}
			for _, v := range vals {
				if img, err := e.Images.Resolve(ctx, v); err == nil {
					ids[img.ID.String()] = true
				}
			}
			preds = append(preds, func(c *container.Container) bool { return ids[c.Image] })
		case "volume":
			preds = append(preds, func(c *container.Container) bool {
				for _, m := range c.Mounts {
					if containsStr(vals, m.Name) || containsStr(vals, m.Destination) || containsStr(vals, m.Source) {
						return true
					}
				}
				return false
			})
		case "health":
			preds = append(preds, func(c *container.Container) bool {
				h := "none"
				if c.State.Health != nil {
					h = c.State.Health.Status
				}
				return containsStr(vals, h)
			})
		case "network":
			preds = append(preds, func(c *container.Container) bool { return containsStr(vals, c.HostConfig.NetworkMode) })
		case "isolation", "publish", "expose", "before", "since":
			return nil, errdefs.InvalidArgument("the filter '%s' is not supported yet", k)
		default:
			return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
		}
	}
	return func(c *container.Container) bool {
		for _, p := range preds {
			if !p(c) {
				return false
			}
		}
		return true
	}, nil
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
