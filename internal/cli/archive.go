package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/term"
)

func (a *app) saveCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "save [OPTIONS] IMAGE [IMAGE...]",
		Short: "Save one or more images to a tar archive (streamed to STDOUT by default)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// writeOutput refuses a terminal before the engine is opened,
			// as docker refuses before it contacts the daemon.
			var e *engine.Engine
			err := a.writeOutput(output, func(w io.Writer) error {
				var err error
				if e, err = a.engine(ctx); err != nil {
					return err
				}
				return e.ImageSave(ctx, w, args)
			})
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func (a *app) loadCommand() *cobra.Command {
	var input string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "load [OPTIONS]",
		Short: "Load an image from a tar archive or STDIN",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r := a.stdin
			if input == "" {
				if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(f) {
					return errdefs.InvalidArgument("requested load from stdin, but stdin is empty")
				}
			} else {
				f, err := os.Open(input)
				if err != nil {
					return errdefs.InvalidArgument("open %s: %v", input, err)
				}
				defer f.Close()
				r = f
			}
			e, err := a.engine(ctx)
			if err != nil {
				return err
			}
			imgs, err := e.ImageLoad(ctx, r)
			if err != nil {
				return err
			}
			for _, img := range imgs {
				for _, t := range img.RepoTags {
					if old, ok := img.Replaced[t]; ok {
						fmt.Fprintf(a.stdout, "The image %s already exists, renaming the old one with ID %s to empty string\n", t, old)
					}
					fmt.Fprintf(a.stdout, "Loaded image: %s\n", t)
				}
				if len(img.RepoTags) == 0 {
					fmt.Fprintf(a.stdout, "Loaded image ID: %s\n", img.ID)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "Read from tar archive file, instead of STDIN")
	// docker's -q hides the progress bars; berth draws none, and prints the
	// "Loaded image" lines either way, as docker does.
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress the load output")
	return cmd
}
