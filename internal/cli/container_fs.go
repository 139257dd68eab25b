package cli

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/term"
)

func (a *app) exportCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  exactArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return a.writeOutput(output, func(w io.Writer) error { return e.ContainerExport(ctx, args[0], w) })
		}),
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

// writeOutput streams to -o FILE (atomically: a temp file renamed into
// place) or to stdout, refusing to write binary to a terminal.
func (a *app) writeOutput(path string, fn func(io.Writer) error) error {
	if path == "" {
		if f, ok := a.stdout.(*os.File); ok && term.IsTerminal(f) {
			return errdefs.InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
		}
		return fn(a.stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".berth-out-")
	if err != nil {
		return errdefs.InvalidArgument("failed to create the output file: %v", err)
	}
	defer os.Remove(tmp.Name())
	if err := fn(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	os.Chmod(tmp.Name(), 0o644)
	return os.Rename(tmp.Name(), path)
}

func (a *app) commitCommand() *cobra.Command {
	var opts engine.ContainerCommitRequest
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  rangeArgs(1, 2),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			if len(args) == 2 {
				opts.Reference = args[1]
			}
			img, err := e.ContainerCommit(ctx, args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, img.ID)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Author, "author", "a", "", "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")")
	fl.StringVarP(&opts.Comment, "message", "m", "", "Commit message")
	fl.StringArrayVarP(&opts.Changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	fl.BoolVarP(&opts.Pause, "pause", "p", true, "Pause container during commit")
	return cmd
}

func (a *app) diffCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  exactArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			changes, err := e.ContainerChanges(ctx, args[0])
			if err != nil {
				return err
			}
			for _, ch := range changes {
				fmt.Fprintf(a.stdout, "%s %s\n", ch.Kind, ch.Path)
			}
			return nil
		}),
	}
}

func (a *app) cpCommand() *cobra.Command {
	var opts cpOptions
	var quiet bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			srcCtr, srcPath := splitCpArg(args[0])
			dstCtr, dstPath := splitCpArg(args[1])
			var err error
			switch {
			case srcCtr != "" && dstCtr != "":
				err = errdefs.InvalidArgument("copying between containers is not supported")
			case srcCtr == "" && dstCtr == "":
				err = errdefs.InvalidArgument("must specify at least one container source")
			case srcCtr != "":
				err = a.copyFromContainer(ctx, srcCtr, srcPath, dstPath, opts)
			default:
				err = a.copyToContainer(ctx, srcPath, dstCtr, dstPath, opts)
			}
			return cpExit(a, err)
		},
	}
	cmd.Flags().BoolVarP(&opts.Archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	cmd.Flags().BoolVarP(&opts.FollowLink, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Suppress progress output during copy")
	return cmd
}

// cpExit: a failed cp is reported at the edge like any other command
// (exit 1, docker's words).
func cpExit(_ *app, err error) error { return err }

// splitCpArg splits "container:path"; a local path starting with / or . is
// never a container reference, like docker.
func splitCpArg(arg string) (ctr, path string) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	if i := strings.Index(arg, ":"); i > 0 {
		return arg[:i], arg[i+1:]
	}
	return "", arg
}

// cpOptions are cp's -a and -L.
type cpOptions struct {
	Archive    bool // keep uid/gid; otherwise files belong to root (into a container) or to the caller (out of one)
	FollowLink bool // -L: copy what a source symlink points to
}

func (a *app) copyFromContainer(ctx context.Context, ref, src, dst string, opts cpOptions) error {
	e, err := a.engine(ctx)
	if err != nil {
		return err
	}
	get := engine.ContainerArchiveRequest{FollowLink: opts.FollowLink, Archive: opts.Archive}
	if dst == "-" {
		return e.ContainerArchive(ctx, ref, src, get, a.stdout)
	}
	srcInfo, err := e.ContainerStatPath(ctx, ref, src, opts.FollowLink)
	if err != nil {
		return err
	}
	// Decide where the tar lands and under which name, by docker's rules.
	extractDir, name := dst, ""
	dstInfo, statErr := os.Stat(dst)
	switch {
	case statErr == nil && dstInfo.IsDir():
		name = filepath.Base(filepath.Clean("/" + src))
		if strings.HasSuffix(src, "/.") {
			name = ""
		}
	case statErr == nil && srcInfo.IsDir():
		return errdefs.InvalidArgument("cannot copy a directory to a file: %s", dst)
	case statErr != nil && strings.HasSuffix(dst, "/"):
		return errdefs.InvalidArgument("destination directory %s does not exist", dst)
	case statErr != nil && !os.IsNotExist(statErr):
		return statErr
	default:
		extractDir, name = filepath.Dir(dst), filepath.Base(dst)
		if _, err := os.Stat(extractDir); err != nil {
			return errdefs.InvalidArgument("destination directory %s does not exist", extractDir)
		}
	}
	base := filepath.Base(filepath.Clean("/" + src))
	if strings.HasSuffix(src, "/.") {
		// Contents only: into the existing directory, or a new one.
		if name != "" {
			extractDir = filepath.Join(extractDir, name)
			if err := os.Mkdir(extractDir, srcInfo.Mode.Perm()); err != nil && !os.IsExist(err) {
				return err
			}
		}
		name, base = "", ""
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(e.ContainerArchive(ctx, ref, src, get, pw))
	}()
	var in io.Reader = pr
	if name != "" && name != base {
		pr2, pw2 := io.Pipe()
		go func() { pw2.CloseWithError(retopTar(pr, pw2, base, name)) }()
		defer pr2.Close()
		in = pr2
	}
	err = engine.ExtractArchive(ctx, extractDir, in, opts.Archive)
	pr.Close()
	return err
}

func (a *app) copyToContainer(ctx context.Context, src, ref, dst string, opts cpOptions) error {
	e, err := a.engine(ctx)
	if err != nil {
		return err
	}
	if src == "-" {
		return e.ContainerExtractToDir(ctx, ref, dst, a.stdin)
	}
	// The top entry keeps the name given (a followed link's, not its
	// target's); "SRC/." copies the contents only.
	dstDir, name := dst, filepath.Base(filepath.Clean(src))
	if strings.HasSuffix(src, "/.") {
		name = ""
	}
	follow := opts.FollowLink || strings.HasSuffix(src, "/") || strings.HasSuffix(src, "/.")
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	srcInfo, err := stat(src)
	if err != nil {
		return errdefs.InvalidArgument("could not find the file %s", src)
	}
	if follow {
		if src, err = filepath.EvalSymlinks(src); err != nil {
			return err
		}
	}
	// Like docker, a destination that is a symlink is followed, inside
	// the container's root.
	dstInfo, err := e.ContainerStatPath(ctx, ref, dst, true)
	if err == nil && dstInfo.LinkTarget != "" && !dstInfo.IsDir() && !strings.HasSuffix(dst, "/") && !strings.HasSuffix(dst, "/.") {
		dst = dstInfo.LinkTarget // a file: written where the link leads
	}
	switch {
	case err == nil && dstInfo.IsDir():
	case err == nil && (strings.HasSuffix(dst, "/") || strings.HasSuffix(dst, "/.")):
		// A trailing slash asserts a directory: never replace what is there.
		return errdefs.InvalidArgument("destination \"%s:%s\" must be a directory", ref, dst)
	case err == nil && srcInfo.IsDir():
		return errdefs.InvalidArgument("cannot copy a directory to a file: %s", dst)
	case err != nil && !errdefs.IsNotFound(err):
		return err
	case err != nil && strings.HasSuffix(dst, "/"):
		return errdefs.InvalidArgument("destination directory %s does not exist in the container", dst)
	default:
		dstDir, name = filepath.Dir(filepath.Clean("/"+dst)), filepath.Base(filepath.Clean("/"+dst))
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(engine.TarHostPath(ctx, pw, filepath.Clean(src), name, opts.Archive)) }()
	err = e.ContainerExtractToDir(ctx, ref, dstDir, pr)
	pr.Close()
	return err
}

// retopTar copies a tar from r to w, renaming the top entry from to to.
func retopTar(r io.Reader, w io.Writer, from, to string) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	fix := func(n string) string {
		if n == from || n == from+"/" {
			return to + n[len(from):]
		}
		if strings.HasPrefix(n, from+"/") {
			return to + n[len(from):]
		}
		return n
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return err
		}
		hdr.Name = fix(hdr.Name)
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = fix(hdr.Linkname)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}
