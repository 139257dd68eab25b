package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/lockfile"
)

// defaultClaimsDir holds the host-wide subnet claims of every berth root.
const defaultClaimsDir = "/run/berth-subnets"

// subnetClaims records, host-wide and under one lock, the subnets berth's
// roots took from the default pools. A pick sees the host's routes, but a
// network whose bridge is not made yet has none: without the claims two
// roots on one host (a user's second root, tests) take the same subnet,
// and once both bridges exist one routes the other's traffic.
type subnetClaims struct {
	dir  string // "" for none (a service without a root, in unit tests)
	root string // the claiming root; its own claims are its records
}

type subnetClaim struct {
	Root   string `json:"root"`
	Subnet string `json:"subnet"`
}

// pick chooses with choose among what neither used nor another live root's
// claim covers, and claims the choice for networkID.
func (c subnetClaims) pick(networkID string, used []netip.Prefix, choose func([]netip.Prefix) (netip.Prefix, error)) (netip.Prefix, error) {
	if c.dir == "" {
		return choose(used)
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet claims: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(c.dir, ".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet claims: %w", err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lockfile.Flock(ctx, f, unix.LOCK_EX); err != nil {
		return netip.Prefix{}, fmt.Errorf("wait for another berth process picking a subnet: %w", err)
	}
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet claims: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(c.dir, name)
		var cl subnetClaim
		raw, err := os.ReadFile(path)
		if err != nil || json.Unmarshal(raw, &cl) != nil {
			continue
		}
		if cl.Root == c.root {
			continue // this root's records say what it uses
		}
		if _, err := os.Stat(cl.Root); errors.Is(err, os.ErrNotExist) {
			os.Remove(path) // its root is gone, and its networks with it
			continue
		}
		if p, err := netip.ParsePrefix(cl.Subnet); err == nil {
			used = append(used, p.Masked())
		}
	}
	p, err := choose(used)
	if err != nil {
		return p, err
	}
	raw, _ := json.Marshal(subnetClaim{Root: c.root, Subnet: p.String()})
	tmp := filepath.Join(c.dir, "."+networkID+".tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet claims: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, networkID+".json")); err != nil {
		os.Remove(tmp)
		return netip.Prefix{}, fmt.Errorf("subnet claims: %w", err)
	}
	return p, nil
}

// release gives up networkID's claim (the network is removed).
func (c subnetClaims) release(networkID string) {
	if c.dir != "" {
		os.Remove(filepath.Join(c.dir, networkID+".json"))
	}
}
