package engine

import (
	"context"
	"io"
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
	// GCInterval runs the online garbage collector that often (0: never);
	// GCGrace spares blobs younger than it (0: an hour).
	GCInterval time.Duration
	GCGrace    time.Duration
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
	srv, err := server.New(server.Config{
		Root: req.Root, Htpasswd: req.Htpasswd, TokenAuth: req.TokenAuth, Realm: req.Realm,
		ReadOnly: req.ReadOnly, GCGrace: req.GCGrace, Log: req.Log,
	})
	if err != nil {
		return errdefs.InvalidArgument("registry serve: %w", err)
	}
	return srv.ListenAndServe(ctx, server.ListenConfig{
		Addr: req.Addr, TLSCert: req.TLSCert, TLSKey: req.TLSKey, GCInterval: req.GCInterval, Ready: req.Ready,
	})
}
