package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
)

// registryCommand is `berth registry`: berth's own private registry. The
// client commands (login, logout, pull, push, search) are top level, as
// in docker.
func (a *app) registryCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "registry", Short: "Run a private registry", Args: noArgs, RunE: func(c *cobra.Command, _ []string) error { return c.Help() }}
	cmd.AddCommand(a.registryServeCommand(), a.registryGCCommand())
	return cmd
}

func (a *app) registryServeCommand() *cobra.Command {
	var req engine.RegistryServeRequest
	var auth string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve a private registry (OCI distribution spec v1.1) until interrupted",
		Long: `Serve a private registry (OCI distribution spec v1.1) until interrupted.

The registry keeps its content under --root. With --htpasswd (bcrypt
entries, htpasswd -B) it asks for credentials: Basic auth by default,
or docker login's token flow with --auth token. Requests are logged to
stderr, one line each.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch auth {
			case "basic":
			case "token":
				req.TokenAuth = true
			default:
				return usageError{fmt.Errorf("invalid --auth %q: want basic or token", auth)}
			}
			req.Log = a.stderr
			if quiet {
				req.Log = io.Discard
			}
			scheme := "http"
			if req.TLSCert != "" {
				scheme = "https"
			}
			req.Ready = func(addr string) {
				fmt.Fprintf(a.stderr, "berth registry: serving %s on %s://%s\n", req.Root, scheme, addr)
			}
			return engine.RegistryServe(c.Context(), req)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Addr, "addr", "127.0.0.1:5000", "Address to listen on")
	f.StringVar(&req.Root, "root", "/var/lib/berth-registry", "Directory that holds the registry's content")
	f.StringVar(&req.Htpasswd, "htpasswd", "", "htpasswd file of bcrypt entries: require these credentials")
	f.StringVar(&auth, "auth", "basic", `With --htpasswd: "basic" or "token" (docker login's token flow, served at /token)`)
	f.StringVar(&req.Realm, "auth-realm", "", "Token endpoint URL to advertise (default: this server's /token)")
	f.StringVar(&req.TLSCert, "tls-cert", "", "TLS certificate (PEM)")
	f.StringVar(&req.TLSKey, "tls-key", "", "TLS private key (PEM)")
	f.BoolVar(&req.ReadOnly, "read-only", false, "Refuse every write")
	f.StringVar(&req.MaxBlobSize, "max-blob-size", "", "Refuse blob uploads larger than this (e.g. 10g; default: no limit)")
	f.DurationVar(&req.GCInterval, "gc-interval", 0, "Collect garbage online this often (e.g. 1h; 0: never)")
	f.DurationVar(&req.GCGrace, "gc-grace", 0, "Spare blobs pushed within this window from garbage collection (default 1h)")
	f.StringVar(&req.ProxyRemoteURL, "proxy-remote-url", "", "Serve as a pull-through cache of this registry (e.g. https://registry-1.docker.io)")
	f.StringVar(&req.ProxyUsername, "proxy-username", "", "User to log in to the --proxy-remote-url registry as")
	f.StringVar(&req.ProxyPasswordFile, "proxy-password-file", "", "File holding --proxy-username's password")
	f.BoolVarP(&quiet, "quiet", "q", false, "Do not log requests")
	return cmd
}

func (a *app) registryGCCommand() *cobra.Command {
	var req engine.RegistryGCRequest
	cmd := &cobra.Command{
		Use:   "garbage-collect [OPTIONS]",
		Short: "Remove blobs no manifest references",
		Long: `Remove blobs no manifest references, sparing those pushed within the
grace window. When a registry server serves the root, it is asked to
collect (online, while it keeps serving) and logs what it removed.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			res, err := engine.RegistryGC(c.Context(), req)
			if err != nil {
				return err
			}
			if res.Online {
				fmt.Fprintf(a.stdout, "asked the registry server (pid %d) to collect garbage; it logs what it removes\n", res.PID)
				return nil
			}
			fmt.Fprintf(a.stdout, "removed %d blobs (%d bytes), %d repository links, %d abandoned uploads\n", res.BlobsRemoved, res.BytesFreed, res.LinksRemoved, res.Uploads)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Root, "root", "/var/lib/berth-registry", "Directory that holds the registry's content")
	f.DurationVar(&req.GCGrace, "gc-grace", 0, "Spare blobs pushed within this window (default 1h)")
	return cmd
}
