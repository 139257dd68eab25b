package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/term"
)

func (a *app) pullCommand() *cobra.Command {
	var req engine.ImagePullRequest
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [OPTIONS] NAME[:TAG|@DIGEST]",
		Short: "Download an image from a registry",
		Args:  exactArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			req.Reference = args[0]
			res, err := a.pull(ctx, e, req, quiet, a.stdout)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, res.Reference)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&req.AllTags, "all-tags", "a", false, "Download all tagged images in the repository")
	fl.StringVar(&req.Platform, "platform", os.Getenv("DOCKER_DEFAULT_PLATFORM"), "Set platform if server is multi-platform capable")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	fl.Bool("disable-content-trust", true, "Skip image verification")
	return cmd
}

// pull runs a pull, rendering its progress on out (nothing with quiet),
// and says "Using default tag" as docker's CLI does.
func (a *app) pull(ctx context.Context, e *engine.Engine, req engine.ImagePullRequest, quiet bool, out io.Writer) (engine.ImagePullResult, error) {
	if !quiet && !req.AllTags {
		if ref, err := engine.ParseNormalizedName(req.Reference); err == nil && ref.NameOnly() {
			fmt.Fprintln(out, "Using default tag: latest")
		}
	}
	if !quiet {
		pv := newProgressView(out)
		req.Progress = pv.show
	}
	return e.ImagePull(ctx, req)
}

func (a *app) pushCommand() *cobra.Command {
	var req engine.ImagePushRequest
	var quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] NAME[:TAG]",
		Short: "Upload an image to a registry",
		Args:  exactArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			req.Reference = args[0]
			ref, err := engine.ParseNormalizedName(req.Reference)
			if err != nil {
				return err
			}
			if !req.AllTags && ref.NameOnly() {
				fmt.Fprintln(a.stdout, "Using default tag: latest")
			}
			if !quiet {
				req.Progress = newProgressView(a.stdout).show
			}
			if _, err := e.ImagePush(ctx, req); err != nil {
				return err
			}
			if quiet {
				if !req.AllTags && ref.NameOnly() {
					fmt.Fprintln(a.stdout, ref.String()+":latest")
				} else {
					fmt.Fprintln(a.stdout, ref.String())
				}
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&req.AllTags, "all-tags", "a", false, "Push all tags of an image to the repository")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Suppress verbose output")
	fl.Bool("disable-content-trust", true, "Skip image signing")
	return cmd
}

// progressView renders docker's progress stream as docker's CLI does: on
// a terminal one line per layer, rewritten in place; otherwise plain
// lines without the progress bars.
type progressView struct {
	out   io.Writer
	tty   bool
	width int
	ids   map[string]int
}

func newProgressView(out io.Writer) *progressView {
	pv := &progressView{out: out, ids: map[string]int{}}
	if f, ok := out.(*os.File); ok && term.IsTerminal(f) {
		pv.tty = true
		_, w := term.Size(f)
		pv.width = int(w)
	}
	return pv
}

func (pv *progressView) show(m engine.JSONMessage) {
	if m.Aux != nil {
		return
	}
	bar := ""
	if d := m.ProgressDetail; d != nil && (d.Current > 0 || d.Total > 0) {
		if !pv.tty {
			return // no progress bars off a terminal
		}
		bar = engine.ProgressString(d.Current, d.Total, pv.width, 0)
	}
	prefix := ""
	if m.ID != "" {
		prefix = m.ID + ": "
	}
	if !pv.tty || m.ID == "" || m.ProgressDetail == nil {
		pv.ids = map[string]int{}
		fmt.Fprintf(pv.out, "%s%s\n", prefix, m.Status)
		return
	}
	line, ok := pv.ids[m.ID]
	if !ok {
		line = len(pv.ids)
		pv.ids[m.ID] = line
		fmt.Fprint(pv.out, "\n")
	}
	diff := len(pv.ids) - line
	var b strings.Builder
	fmt.Fprintf(&b, "\x1b[%dA\x1b[2K\r%s%s %s\r\x1b[%dB", diff, prefix, m.Status, bar, diff)
	io.WriteString(pv.out, b.String())
}
