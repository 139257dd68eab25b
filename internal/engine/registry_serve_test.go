package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestRegistryServeRefusesBadRequests(t *testing.T) {
	root := t.TempDir()
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(htpasswd, []byte("alice:{SHA}x\n"), 0o600)
	for name, req := range map[string]RegistryServeRequest{
		"no root":             {Addr: "127.0.0.1:0"},
		"cert without key":    {Addr: "127.0.0.1:0", Root: root, TLSCert: "c.pem"},
		"token without users": {Addr: "127.0.0.1:0", Root: root, TokenAuth: true},
		"non-bcrypt users":    {Addr: "127.0.0.1:0", Root: root, Htpasswd: htpasswd},
		"bad proxy URL":       {Addr: "127.0.0.1:0", Root: root, ProxyRemoteURL: "registry-1.docker.io"},
		"missing password":    {Addr: "127.0.0.1:0", Root: root, ProxyRemoteURL: "https://r.example", ProxyPasswordFile: "/nonexistent"},
		"bad max blob size":   {Addr: "127.0.0.1:0", Root: root, MaxBlobSize: "lots"},
		"zero max blob size":  {Addr: "127.0.0.1:0", Root: root, MaxBlobSize: "0"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := RegistryServe(context.Background(), req); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("got %v, want an invalid-argument error", err)
			}
		})
	}
	if _, err := RegistryGC(context.Background(), RegistryGCRequest{Root: filepath.Join(root, "missing")}); !errdefs.IsNotFound(err) {
		t.Fatalf("GC of a missing root: %v", err)
	}
	res, err := RegistryGC(context.Background(), RegistryGCRequest{Root: root})
	if err != nil || res.Online || res.BlobsRemoved != 0 {
		t.Fatalf("GC of an empty root: %+v %v", res, err)
	}
}
