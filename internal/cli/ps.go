package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/filters"
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
	// LocalVolumes and Platform are in docker's rows too (Platform is
	// null where the engine does not report the image's platform).
	LocalVolumes string `json:"LocalVolumes"`
	Platform     any    `json:"Platform"`

	labels map[string]string
}

// Label returns one label's value, as docker's {{.Label "key"}}.
func (r psRow) Label(key string) string { return r.labels[key] }

var psHeaders = map[string]string{
	"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT", "RunningFor": "CREATED",
	"Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS",
	"Mounts": "MOUNTS", "Networks": "NETWORKS", "Label": "LABEL", "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
}

func (a *app) psCommand() *cobra.Command {
	var all, quiet, latest, size, noTrunc bool
	var last int
	var format string
	flt := filters.NewFlag()
	var cmd *cobra.Command
	cmd = &cobra.Command{
		Use:     "ps [OPTIONS]",
		Aliases: []string{"ls", "list"},
		Short:   "List containers",
		Args:    noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			if latest {
				last = 1
			}
			if format != "" {
				// docker's ps tries the template on an empty row first (a
				// bad field fails even with no rows) and computes sizes
				// when the template shows them.
				if err := checkRowTemplate[psRow](format); err != nil {
					return err
				}
				if !quiet && !cmd.Flags().Changed("size") && formatUsesField(format, "Size") {
					size = true
				}
			}
			ctrs, err := e.ListContainers(ctx, engine.ContainerListRequest{All: all, Limit: max(last, 0), Size: size, Filters: flt.Args})
			if err != nil {
				return err
			}
			now := time.Now()
			rows := make([]psRow, 0, len(ctrs))
			for _, c := range ctrs {
				rows = append(rows, psRowOf(c, now, noTrunc, size))
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
	fl.VarP(flt, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func psRowOf(c engine.ContainerSummary, now time.Time, noTrunc, size bool) psRow {
	id := c.ID
	cmdline := c.Command
	if !noTrunc {
		id = id[:12]
		cmdline = ellipsis(cmdline, 20)
	}
	var labels []string
	for k, v := range c.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	var mounts []string
	local := 0
	for _, m := range c.Mounts {
		if m.Type == "volume" && m.Driver == "local" {
			local++
		}
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
		ID: id, Image: c.Image, Command: strconv.Quote(cmdline),
		CreatedAt:  c.CreatedAt.Local().Format("2006-01-02 15:04:05 -0700 MST"),
		RunningFor: humanDuration(now.Sub(c.CreatedAt)) + " ago",
		State:      c.State, Status: c.Status, Names: strings.TrimPrefix(c.Names[0], "/"),
		Labels: strings.Join(labels, ","), Mounts: strings.Join(mounts, ","), Networks: strings.Join(c.Networks, ","),
		Ports:        displayPorts(c.Ports),
		LocalVolumes: strconv.Itoa(local),
		labels:       c.Labels,
	}
	if size {
		r.Size = fmt.Sprintf("%s (virtual %s)", humanSize(c.SizeRw), humanSize(c.SizeRootFs))
	}
	return r
}
