package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/term"
)

func (a *app) topCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "top CONTAINER [ps OPTIONS]",
		Short: "Display the running processes of a container",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			top, err := e.ContainerTop(ctx, args[0], args[1:])
			if err != nil {
				return err
			}
			titles, procs := top.Titles, top.Processes
			// docker's layout: columns at least 20 wide, 3 spaces apart.
			w := tabwriter.NewWriter(a.stdout, 20, 1, 3, ' ', 0)
			fmt.Fprintln(w, strings.Join(titles, "\t"))
			for _, p := range procs {
				fmt.Fprintln(w, strings.Join(p, "\t"))
			}
			return w.Flush()
		}),
	}
	// Everything after CONTAINER belongs to ps.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// statsRow is one row of `stats`, with docker's template field names.
type statsRow struct {
	BlockIO   string `json:"BlockIO"`
	CPUPerc   string `json:"CPUPerc"`
	Container string `json:"Container"`
	ID        string `json:"ID"`
	MemPerc   string `json:"MemPerc"`
	MemUsage  string `json:"MemUsage"`
	Name      string `json:"Name"`
	NetIO     string `json:"NetIO"`
	PIDs      string `json:"PIDs"`
}

var statsHeaders = map[string]string{
	"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
	"MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}

const defaultStatsFormat = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

// statsTarget is a container shown by stats: ref is how the user named it
// (docker's .Container), id and name fill the row when a reading fails.
type statsTarget struct {
	ref, id, name string
}

type statsOptions struct {
	all, noStream, noTrunc bool
	format                 string
}

func (a *app) statsCommand() *cobra.Command {
	var o statsOptions
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a live stream of container(s) resource usage statistics",
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return a.stats(ctx, e, args, o)
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVar(&o.noStream, "no-stream", false, "Disable streaming stats and only pull the first result")
	fl.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate output")
	fl.StringVar(&o.format, "format", "", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'")
	return cmd
}

// statsFirstInterval separates the two readings of the first frame: CPU %
// is a rate and needs a previous reading.
const statsFirstInterval = 500 * time.Millisecond

// statsRefresh is the streaming refresh period, docker's.
const statsRefresh = time.Second

func (a *app) stats(ctx context.Context, e *engine.Engine, refs []string, o statsOptions) error {
	format := o.format
	if format == "" || format == "table" {
		format = defaultStatsFormat
	}
	if _, _, _, err := parseFormat(format); err != nil {
		return err
	}
	// Named containers must all exist, as with docker.
	var named []statsTarget
	if len(refs) > 0 {
		var errs []error
		for _, ref := range refs {
			c, err := e.ContainerInspect(ctx, ref, false)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			named = append(named, statsTarget{ref: ref, id: c.ID, name: strings.TrimPrefix(c.Name, "/")})
		}
		if err := joinErrors(errs); err != nil {
			return err
		}
	}
	targets := func() ([]statsTarget, error) {
		if len(refs) > 0 {
			return named, nil
		}
		// Without names the set follows containers as they start and stop.
		ctrs, err := e.ListContainers(ctx, engine.ContainerListRequest{All: o.all})
		if err != nil {
			return nil, err
		}
		var ts []statsTarget
		for _, c := range ctrs {
			var name string
			if len(c.Names) > 0 {
				name = strings.TrimPrefix(c.Names[0], "/")
			}
			ts = append(ts, statsTarget{ref: statsID(c.ID, o.noTrunc), id: c.ID, name: name})
		}
		return ts, nil
	}

	prev := map[string]*engine.ContainerStats{}
	round := func() ([]statsRow, error) {
		ts, err := targets()
		if err != nil {
			return nil, err
		}
		readings := sampleStats(ctx, e, ts)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows := make([]statsRow, len(ts))
		next := map[string]*engine.ContainerStats{}
		for i, t := range ts {
			rows[i] = a.statsRowOf(t, prev[t.id], readings[i], o.noTrunc)
			if readings[i] != nil {
				next[t.id] = readings[i]
			}
		}
		prev = next
		return rows, nil
	}

	if _, err := round(); err != nil {
		return err
	}
	if err := sleepCtx(ctx, statsFirstInterval); err != nil {
		return err
	}
	out, _ := a.stdout.(*os.File)
	clearScreen := !o.noStream && out != nil && term.IsTerminal(out)
	for {
		rows, err := round()
		if err != nil {
			return err
		}
		// Render into a buffer first so that a frame appears at once.
		var buf bytes.Buffer
		if clearScreen {
			buf.WriteString("\033[2J\033[H")
		}
		if err := renderRows(&buf, format, rows, statsHeaders); err != nil {
			return err
		}
		if _, err := a.stdout.Write(buf.Bytes()); err != nil {
			return err
		}
		if o.noStream {
			return nil
		}
		if err := sleepCtx(ctx, statsRefresh); err != nil {
			return err
		}
	}
}

// sampleStats reads all targets at once (one goroutine each), so that a
// round takes as long as its slowest reading, not their sum. A failed
// reading is nil.
func sampleStats(ctx context.Context, e *engine.Engine, ts []statsTarget) []*engine.ContainerStats {
	out := make([]*engine.ContainerStats, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, err := e.ContainerStatsOnce(ctx, t.id); err == nil {
				out[i] = st
			}
		}()
	}
	wg.Wait()
	return out
}

func statsID(id string, noTrunc bool) string {
	if noTrunc || len(id) < 12 {
		return id
	}
	return id[:12]
}

// statsRowOf renders a reading as docker does: memory in binary units,
// network and block I/O in decimal ones, "--" when there is no reading.
func (a *app) statsRowOf(t statsTarget, prev, cur *engine.ContainerStats, noTrunc bool) statsRow {
	r := statsRow{Container: t.ref, ID: statsID(t.id, noTrunc), Name: t.name}
	if cur == nil {
		r.CPUPerc, r.MemUsage, r.MemPerc, r.NetIO, r.BlockIO, r.PIDs = "--", "-- / --", "--", "--", "--", "--"
		return r
	}
	if cur.Name != "" {
		r.Name = cur.Name
	}
	rx, tx := cur.NetIO()
	r.CPUPerc = fmt.Sprintf("%.2f%%", engine.CPUPercent(prev, cur))
	r.MemUsage = binarySize(float64(cur.MemoryUsage)) + " / " + binarySize(float64(cur.MemoryLimit))
	r.MemPerc = fmt.Sprintf("%.2f%%", cur.MemoryPercent())
	r.NetIO = humanSize(int64(rx)) + " / " + humanSize(int64(tx))
	r.BlockIO = humanSize(int64(cur.BlockRead)) + " / " + humanSize(int64(cur.BlockWrite))
	r.PIDs = strconv.FormatUint(cur.PIDs, 10)
	return r
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
