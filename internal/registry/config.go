// Package registry is berth's registry client: pull, push, login and
// search over the distribution protocol: the handshake (ping, Basic, the
// bearer token flow of Docker Hub and distribution), requests with their
// retries and resumption, the transfer engine (downloads extracted while
// they stream, in parallel), mirrors and the TLS policy.
// go-containerregistry's in-process registry serves its tests; its
// client packages are not linked (see auth.go for why).
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// DefaultConfigFile is berth's daemon configuration, in dockerd's
// daemon.json keys.
const DefaultConfigFile = "/etc/berth/daemon.json"

// DefaultCertsDirs are searched for <host[:port]>/ directories of CA
// certificates (*.crt) and client key pairs (*.cert, *.key), Docker's
// layout; berth's own directory wins.
var DefaultCertsDirs = []string{"/etc/berth/certs.d", "/etc/docker/certs.d"}

// Docker Hub: the name references use, the host the API is served from,
// and the key credentials are stored under.
const (
	DockerHub       = "docker.io"
	dockerHubAPI    = "registry-1.docker.io"
	DockerHubServer = "https://index.docker.io/v1/"
)

// Options is the registry policy: dockerd's daemon.json keys, plus a
// mirror map for any registry.
type Options struct {
	// InsecureRegistries may be reached over plain HTTP or with a
	// certificate that does not verify: host[:port] names or CIDRs.
	// Loopback registries always may (as dockerd: 127.0.0.0/8).
	InsecureRegistries []string
	// Mirrors maps a registry (docker.io, quay.io, 127.0.0.1:5000) to
	// mirror base URLs tried first, in order, for pulls; the origin is
	// the fallback.
	Mirrors map[string][]string
	// AllowNondistributable lists registries to which foreign layers are
	// pushed (dockerd's allow-nondistributable-artifacts).
	AllowNondistributable []string
	// CertsDirs are searched for <host>/ certificate directories.
	CertsDirs []string
	// MaxConcurrentDownloads and MaxConcurrentUploads bound the layers in
	// flight per pull or push (dockerd's defaults: 3 and 5).
	MaxConcurrentDownloads int
	MaxConcurrentUploads   int
}

// daemonConfig is the part of daemon.json berth reads.
type daemonConfig struct {
	InsecureRegistries    []string        `json:"insecure-registries"`
	RegistryMirrors       json.RawMessage `json:"registry-mirrors"`
	AllowNondistributable []string        `json:"allow-nondistributable-artifacts"`
	MaxDownloads          int             `json:"max-concurrent-downloads"`
	MaxUploads            int             `json:"max-concurrent-uploads"`
	// berth's own: where certs.d/<host>/ directories are looked for
	// instead of DefaultCertsDirs (a user's or a test's trust).
	CertsDirs []string `json:"certs-dirs"`
}

// LoadConfig reads berth's daemon configuration at path (a missing file
// is an empty configuration). "registry-mirrors" is dockerd's list of
// Docker Hub mirrors, or an object mapping any registry to its mirrors.
// BERTH_MAX_CONCURRENT_DOWNLOADS overrides the file.
func LoadConfig(path string) (Options, error) {
	o := Options{CertsDirs: DefaultCertsDirs, MaxConcurrentDownloads: 3, MaxConcurrentUploads: 5}
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return o, errdefs.InvalidArgument("read configuration %s: %v", path, err)
	}
	if err == nil {
		var dc daemonConfig
		if err := json.Unmarshal(raw, &dc); err != nil {
			return o, errdefs.InvalidArgument("configuration %s: %v", path, err)
		}
		o.InsecureRegistries = dc.InsecureRegistries
		o.AllowNondistributable = dc.AllowNondistributable
		if len(dc.CertsDirs) > 0 {
			for _, d := range dc.CertsDirs {
				if !filepath.IsAbs(d) {
					return o, errdefs.InvalidArgument("configuration %s: certs-dirs entry %q: must be an absolute path", path, d)
				}
			}
			o.CertsDirs = dc.CertsDirs
		}
		if dc.MaxDownloads > 0 {
			o.MaxConcurrentDownloads = dc.MaxDownloads
		}
		if dc.MaxUploads > 0 {
			o.MaxConcurrentUploads = dc.MaxUploads
		}
		if len(dc.RegistryMirrors) > 0 && string(dc.RegistryMirrors) != "null" {
			var list []string
			var byHost map[string][]string
			switch {
			case json.Unmarshal(dc.RegistryMirrors, &list) == nil:
				o.Mirrors = map[string][]string{DockerHub: list}
			case json.Unmarshal(dc.RegistryMirrors, &byHost) == nil:
				o.Mirrors = byHost
			default:
				return o, errdefs.InvalidArgument("configuration %s: registry-mirrors must be a list of Docker Hub mirrors or an object of registry: [mirrors]", path)
			}
			for host, ms := range o.Mirrors {
				for _, m := range ms {
					if !strings.HasPrefix(m, "http://") && !strings.HasPrefix(m, "https://") {
						return o, errdefs.InvalidArgument("configuration %s: mirror %q of %s: must be an http:// or https:// URL", path, m, host)
					}
				}
			}
		}
	}
	if v := os.Getenv("BERTH_MAX_CONCURRENT_DOWNLOADS"); v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			return o, errdefs.InvalidArgument("BERTH_MAX_CONCURRENT_DOWNLOADS=%q: not a positive number", v)
		}
		o.MaxConcurrentDownloads = n
	}
	return o, nil
}

// insecure reports whether host (host[:port]) may be spoken to over plain
// HTTP or without verifying its certificate: a loopback address, localhost,
// or one the configuration lists (by name or CIDR).
func (o *Options) insecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	if ip != nil && ip.IsLoopback() {
		return true
	}
	// A mirror configured with an http:// URL was asked for as such.
	for _, ms := range o.Mirrors {
		for _, m := range ms {
			if rest, ok := strings.CutPrefix(m, "http://"); ok && strings.TrimRight(rest, "/") == host {
				return true
			}
		}
	}
	for _, r := range o.InsecureRegistries {
		if r == host || r == h {
			return true
		}
		if _, cidr, err := net.ParseCIDR(r); err == nil && ip != nil && cidr.Contains(ip) {
			return true
		}
	}
	return false
}

func (o *Options) allowNondistributable(host string) bool {
	for _, r := range o.AllowNondistributable {
		if r == host {
			return true
		}
		if _, cidr, err := net.ParseCIDR(r); err == nil {
			h := host
			if hh, _, err := net.SplitHostPort(host); err == nil {
				h = hh
			}
			if ip := net.ParseIP(h); ip != nil && cidr.Contains(ip) {
				return true
			}
		}
	}
	return false
}
