package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/filters"
)

func (a *app) imageCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage images", Args: noArgs, RunE: func(c *cobra.Command, _ []string) error { return c.Help() }}
	ls := a.imagesCommand()
	ls.Use, ls.Aliases = "ls [OPTIONS] [REPOSITORY[:TAG]]", []string{"list"}
	rm := a.rmiCommand()
	rm.Use, rm.Aliases = "rm [OPTIONS] IMAGE [IMAGE...]", []string{"remove"}
	cmd.AddCommand(ls, rm, a.importCommand(), a.tagCommand(), a.historyCommand(), a.imageInspectCommand(), a.imagePruneCommand(), a.saveCommand(), a.loadCommand(), a.pullCommand(), a.pushCommand())
	return cmd
}

func (a *app) importCommand() *cobra.Command {
	var opts engine.ImageImportRequest
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  rangeArgs(1, 2),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			src := args[0]
			if len(args) == 2 {
				opts.Reference = args[1]
			}
			var r io.Reader
			if src == "-" {
				r = a.stdin
			} else if strings.Contains(src, "://") {
				return errdefs.InvalidArgument("importing from a URL is not supported yet: download %s and import the file", src)
			} else {
				f, err := os.Open(src)
				if err != nil {
					return errdefs.InvalidArgument("open %s: %v", src, err)
				}
				defer f.Close()
				r = f
			}
			// docker's CLI streams a file as it streams stdin: only a URL
			// is named in the image's comment.
			opts.Source = "-"
			img, err := e.ImageImport(ctx, r, opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, img.ID)
			return nil
		}),
	}
	cmd.Flags().StringArrayVarP(&opts.Changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	cmd.Flags().StringVarP(&opts.Message, "message", "m", "", "Set commit message for imported image")
	cmd.Flags().StringVar(&opts.Platform, "platform", "", "Set platform if server is multi-platform capable")
	return cmd
}

// imageRow is one row of `images`, with docker's template field names.
type imageRow struct {
	ID           string `json:"ID"`
	Repository   string `json:"Repository"`
	Tag          string `json:"Tag"`
	Digest       string `json:"Digest"`
	CreatedSince string `json:"CreatedSince"`
	CreatedAt    string `json:"CreatedAt"`
	Size         string `json:"Size"`
	Containers   string `json:"Containers"`
	SharedSize   string `json:"SharedSize"`
	UniqueSize   string `json:"UniqueSize"`
	VirtualSize  string `json:"VirtualSize"`
}

var imageHeaders = map[string]string{
	"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
	"CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
	"UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
}

func (a *app) imagesCommand() *cobra.Command {
	var all, quiet, digests, noTrunc bool
	var format string
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:   "images [OPTIONS] [REPOSITORY[:TAG]]",
		Short: "List images",
		Args:  rangeArgs(0, 1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			f := flt.Args.Clone()
			if len(args) == 1 {
				f.Add("reference", args[0])
			}
			imgs, err := e.ListImages(ctx, engine.ImageListRequest{All: all, Filters: f})
			if err != nil {
				return err
			}
			var rows []imageRow
			now := time.Now()
			for _, img := range imgs {
				id := img.ID
				if !noTrunc {
					id = engine.ShortID(id)
				}
				base := imageRow{
					ID: id, CreatedSince: humanDuration(now.Sub(img.CreatedAt)) + " ago",
					CreatedAt: img.CreatedAt.Local().Format("2006-01-02 15:04:05 -0700 MST"),
					Size:      humanSize(img.Size), VirtualSize: humanSize(img.Size), Digest: "<none>",
					Containers: "N/A", SharedSize: "N/A", UniqueSize: "N/A",
				}
				// A row's digest is the repo digest of its own repository
				// (docker's); an image known only by digest shows as
				// REPOSITORY <none> DIGEST.
				digestOf := func(repo string) string {
					for _, rd := range img.RepoDigests {
						if name, d, _ := strings.Cut(rd, "@"); name == repo {
							return d
						}
					}
					return "<none>"
				}
				if len(img.RepoTags) == 0 {
					if len(img.RepoDigests) == 0 {
						r := base
						r.Repository, r.Tag = "<none>", "<none>"
						rows = append(rows, r)
					}
					for _, rd := range img.RepoDigests {
						r := base
						r.Repository, r.Digest, _ = strings.Cut(rd, "@")
						r.Tag = "<none>"
						rows = append(rows, r)
					}
					continue
				}
				for _, t := range img.RepoTags {
					r := base
					r.Repository, r.Tag = splitRepoTag(t)
					r.Digest = digestOf(r.Repository)
					rows = append(rows, r)
				}
			}
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(a.stdout, r.ID)
				}
				return nil
			}
			// -q prints one ID per row, as docker's (an image tagged
			// twice shows twice). A bare "table" is the default table.
			if format == "" || strings.TrimSpace(format) == "table" {
				format = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
				if digests {
					format = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
				}
			}
			return renderRows(a.stdout, format, rows, imageHeaders)
		}),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all images (default hides intermediate images)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	fl.BoolVar(&digests, "digests", false, "Show digests")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	fl.StringVar(&format, "format", "", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'")
	fl.VarP(flt, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

func (a *app) rmiCommand() *cobra.Command {
	var force, noPrune bool
	cmd := &cobra.Command{
		Use:   "rmi [OPTIONS] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			var errs []error
			for _, ref := range args {
				items, err := e.ImageRemove(ctx, ref, engine.ImageRemoveRequest{Force: force, NoPrune: noPrune})
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, it := range items {
					if it.Untagged != "" {
						fmt.Fprintf(a.stdout, "Untagged: %s\n", it.Untagged)
					}
					if it.Deleted != "" {
						fmt.Fprintf(a.stdout, "Deleted: %s\n", it.Deleted)
					}
				}
			}
			return joinErrors(errs)
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.Flags().BoolVar(&noPrune, "no-prune", false, "Do not delete untagged parents")
	return cmd
}

func (a *app) tagCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
		Short: "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
		Args:  exactArgs(2),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			_, err := e.ImageTag(ctx, args[0], args[1])
			return err
		}),
	}
}

type historyRow struct {
	ID           string `json:"ID"`
	CreatedSince string `json:"CreatedSince"`
	CreatedAt    string `json:"CreatedAt"`
	CreatedBy    string `json:"CreatedBy"`
	Size         string `json:"Size"`
	Comment      string `json:"Comment"`
}

func (a *app) historyCommand() *cobra.Command {
	var human, quiet, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "history [OPTIONS] IMAGE",
		Short: "Show the history of an image",
		Args:  exactArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			items, err := e.ImageHistory(ctx, args[0])
			if err != nil {
				return err
			}
			rows := make([]historyRow, 0, len(items))
			now := time.Now()
			for _, h := range items {
				r := historyRow{ID: h.ID, CreatedBy: h.CreatedBy, Comment: h.Comment, Size: humanSize(h.Size)}
				if !human {
					r.Size = fmt.Sprint(h.Size)
				}
				if !noTrunc && r.ID != "<missing>" {
					r.ID = engine.ShortID(r.ID)
				}
				if !h.Created.IsZero() {
					r.CreatedSince = humanDuration(now.Sub(h.Created)) + " ago"
					r.CreatedAt = h.Created.Format(time.RFC3339)
				}
				if !noTrunc {
					r.CreatedBy = ellipsis(strings.ReplaceAll(r.CreatedBy, "\t", " "), 45)
				}
				rows = append(rows, r)
			}
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(a.stdout, r.ID)
				}
				return nil
			}
			if format == "" {
				format = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
			}
			return renderRows(a.stdout, format, rows, map[string]string{"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"})
		}),
	}
	cmd.Flags().BoolVarP(&human, "human", "H", true, "Print sizes and dates in human readable format")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only show image IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	return cmd
}

func (a *app) imageInspectCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return a.inspectEach(format, args, func(ref string) (any, error) {
				return e.ImageInspect(ctx, ref)
			})
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	return cmd
}

// inspectEach prints the objects find returns for args, as docker's inspect
// commands do: all it found, then an error for each it did not (or whose
// template failed), in the order of args.
func (a *app) inspectEach(format string, args []string, find func(ref string) (any, error)) error {
	var objs, items []any
	var errs []error
	for _, ref := range args {
		obj, err := find(ref)
		if err != nil {
			errs = append(errs, err)
			items = append(items, err)
			continue
		}
		objs = append(objs, obj)
		items = append(items, obj)
	}
	if format != "" {
		all, err := formatInspect(a.stdout, format, items)
		if err != nil {
			return err
		}
		return inspectErrors(all)
	}
	if objs == nil {
		objs = []any{}
	}
	if err := printJSON(a.stdout, objs); err != nil {
		return err
	}
	return joinErrors(errs)
}

func (a *app) imagePruneCommand() *cobra.Command {
	var all, force bool
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused images",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			f := flt.Args.Clone()
			if all {
				f.Add("dangling", "false")
			}
			if !force && !a.confirm(pruneImagesWarning(all)) {
				return nil
			}
			rep, err := e.PruneImages(ctx, f)
			if rep != nil {
				a.printImagePrune(rep)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", humanSize(int64(rep.SpaceReclaimed)))
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images, not just dangling ones")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(flt, "filter", "Provide filter values (e.g. \"until=<timestamp>\")")
	return cmd
}

func pruneImagesWarning(all bool) string {
	if all {
		return "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue? [y/N] "
	}
	return "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
}
