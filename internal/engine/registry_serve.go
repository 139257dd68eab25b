package engine

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry/server"
)

// RegistryServeRequest configures `berth registry serve`, berth's private
// registry (internal/registry/server). It needs no berth store: the
// registry keeps its own under Root.
type RegistryServeRequest struct {
	Addr     string
	Root     string
	Htpasswd string
	// TokenAuth: Bearer challenges and a /token endpoint (docker login's
	// token flow) rather than Basic auth; needs Htpasswd.
	TokenAuth bool
	Realm     string
	TLSCert   string
	TLSKey    string
	ReadOnly  bool
	// MaxBlobSize refuses larger blob uploads ("2g", "500m", bytes;
	// empty: no limit).
	MaxBlobSize string
	// GCInterval runs the online garbage collector that often (0: never);
	// GCGrace spares blobs younger than it (0: an hour).
	GCInterval time.Duration
	GCGrace    time.Duration
	// ProxyRemoteURL makes it a pull-through cache of that registry,
	// logged in to as ProxyUsername with the password in
	// ProxyPasswordFile (anonymous when empty).
	ProxyRemoteURL    string
	ProxyUsername     string
	ProxyPasswordFile string
	// Log receives a line per request (nil: none).
	Log io.Writer
	// Ready is told the listening address.
	Ready func(addr string)
}

// RegistryServe serves a registry until ctx ends.
func RegistryServe(ctx context.Context, req RegistryServeRequest) error {
	if req.Root == "" {
		return errdefs.InvalidArgument("registry serve: --root is required")
	}
	if (req.TLSCert == "") != (req.TLSKey == "") {
		return errdefs.InvalidArgument("registry serve: --tls-cert and --tls-key must be given together")
	}
	if req.TokenAuth && req.Htpasswd == "" {
		return errdefs.InvalidArgument("registry serve: token auth needs --htpasswd to check credentials against")
	}
	var maxBlob int64
	if req.MaxBlobSize != "" {
		n, err := ParseBytes(req.MaxBlobSize)
		if err != nil || n <= 0 {
			return errdefs.InvalidArgument("registry serve: invalid --max-blob-size %q: want a size such as 2g or 500m", req.MaxBlobSize)
		}
		maxBlob = n
	}
	var proxyPassword string
	if req.ProxyPasswordFile != "" {
		b, err := os.ReadFile(req.ProxyPasswordFile)
		if err != nil {
			return errdefs.InvalidArgument("registry serve: --proxy-password-file: %w", err)
		}
		proxyPassword = strings.TrimRight(string(b), "\r\n")
	}
	srv, err := server.New(server.Config{
		Root: req.Root, Htpasswd: req.Htpasswd, TokenAuth: req.TokenAuth, Realm: req.Realm,
		ReadOnly: req.ReadOnly, MaxBlobSize: maxBlob, GCGrace: req.GCGrace, Log: req.Log,
		ProxyRemoteURL: req.ProxyRemoteURL, ProxyUsername: req.ProxyUsername, ProxyPassword: proxyPassword,
	})
	if err != nil {
		return errdefs.InvalidArgument("registry serve: %w", err)
	}
	// SIGUSR1 collects garbage now: `berth registry garbage-collect`
	// sends it to the server that holds the root.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	now := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-usr1:
				select {
				case now <- struct{}{}:
				default:
				}
			}
		}
	}()
	err = srv.ListenAndServe(ctx, server.ListenConfig{
		Addr: req.Addr, TLSCert: req.TLSCert, TLSKey: req.TLSKey, GCInterval: req.GCInterval, GCNow: now, Ready: req.Ready,
	})
	var locked *server.LockedError
	if errors.As(err, &locked) {
		return errdefs.Conflict("registry serve: %s: another registry serves it", locked)
	}
	return err
}

// RegistryGCRequest asks for a garbage collection of a registry root.
type RegistryGCRequest struct {
	Root    string
	GCGrace time.Duration
}

// RegistryGCResult is what a collection did; when a server holds the
// root, the server collects (Online, PID) and logs what it removed.
type RegistryGCResult struct {
	Online       bool
	PID          int
	BlobsRemoved int
	BytesFreed   int64
	LinksRemoved int
	Uploads      int
}

// RegistryGC collects garbage in a registry root now: in this process
// when no server runs on it, else by asking that server (SIGUSR1), whose
// collection is safe while it serves.
func RegistryGC(ctx context.Context, req RegistryGCRequest) (RegistryGCResult, error) {
	if req.Root == "" {
		return RegistryGCResult{}, errdefs.InvalidArgument("registry garbage-collect: --root is required")
	}
	if _, err := os.Stat(req.Root); err != nil {
		return RegistryGCResult{}, errdefs.NotFound("registry garbage-collect: %w", err)
	}
	srv, err := server.New(server.Config{Root: req.Root, GCGrace: req.GCGrace})
	if err != nil {
		return RegistryGCResult{}, err
	}
	// The lock file names this process while it collects: a signal
	// meant for a server must not end it.
	signal.Ignore(syscall.SIGUSR1)
	defer signal.Reset(syscall.SIGUSR1)
	unlock, err := srv.Lock()
	var locked *server.LockedError
	if errors.As(err, &locked) && locked.PID > 0 {
		if err := syscall.Kill(locked.PID, syscall.SIGUSR1); err != nil {
			return RegistryGCResult{}, errdefs.Unavailable("registry garbage-collect: signal the registry server (pid %d): %w", locked.PID, err)
		}
		return RegistryGCResult{Online: true, PID: locked.PID}, nil
	}
	if err != nil {
		return RegistryGCResult{}, err
	}
	defer unlock()
	st, err := srv.GC(ctx)
	return RegistryGCResult{BlobsRemoved: st.BlobsRemoved, BytesFreed: st.BytesFreed, LinksRemoved: st.LinksRemoved, Uploads: st.Uploads}, err
}
