package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ListenConfig says where and how to listen.
type ListenConfig struct {
	Addr string
	// TLSCert and TLSKey are PEM files; both empty: plain HTTP.
	TLSCert, TLSKey string
	// GCInterval runs the garbage collector that often; zero: never.
	GCInterval time.Duration
	// GCNow runs it whenever a value arrives (on demand).
	GCNow <-chan struct{}
	// Ready is told the address once the listener is open.
	Ready func(addr string)
}

// ListenAndServe serves until ctx ends, then lets requests in flight
// finish (for up to 10 seconds).
func (s *Server) ListenAndServe(ctx context.Context, lc ListenConfig) error {
	if (lc.TLSCert == "") != (lc.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key go together")
	}
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	ln, err := net.Listen("tcp", lc.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	if lc.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(lc.TLSCert, lc.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	if lc.Ready != nil {
		lc.Ready(ln.Addr().String())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if lc.GCInterval > 0 || lc.GCNow != nil {
		go s.RunGC(ctx, lc.GCInterval, lc.GCNow, func(st GCStats, err error) {
			if s.cfg.Log == nil {
				return
			}
			if err != nil {
				fmt.Fprintf(s.cfg.Log, "gc: %v\n", err)
				return
			}
			fmt.Fprintf(s.cfg.Log, "gc: %s\n", st)
		})
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
