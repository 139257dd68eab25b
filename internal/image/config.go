package image

import (
	"time"

	"github.com/berth-dev/berth/internal/digest"
)

// Config is an image configuration in Docker's format (a superset of OCI's),
// with the JSON field names both use.
type Config struct {
	Created      *time.Time     `json:"created,omitempty"`
	Author       string         `json:"author,omitempty"`
	Architecture string         `json:"architecture"`
	Variant      string         `json:"variant,omitempty"`
	OS           string         `json:"os"`
	Config       ContainerSpec  `json:"config"`
	RootFS       RootFS         `json:"rootfs"`
	History      []History      `json:"history,omitempty"`
	Comment      string         `json:"comment,omitempty"`
	DockerVer    string         `json:"docker_version,omitempty"`
	Container    string         `json:"container,omitempty"`
	Extra        map[string]any `json:"-"`
}

// ContainerSpec is the "config" part of an image: defaults for containers.
type ContainerSpec struct {
	Hostname     string              `json:"Hostname,omitempty"`
	Domainname   string              `json:"Domainname,omitempty"`
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint"`
	Cmd          []string            `json:"Cmd"`
	Healthcheck  *Healthcheck        `json:"Healthcheck,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	OnBuild      []string            `json:"OnBuild,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int                `json:"StopTimeout,omitempty"`
	Shell        []string            `json:"Shell,omitempty"`
}

// Healthcheck is docker's HEALTHCHECK configuration; durations in ns.
type Healthcheck struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// RootFS lists the layers' uncompressed digests, bottom first.
type RootFS struct {
	Type    string          `json:"type"`
	DiffIDs []digest.Digest `json:"diff_ids"`
}

// History is one step of the image's history.
type History struct {
	Created    *time.Time `json:"created,omitempty"`
	CreatedBy  string     `json:"created_by,omitempty"`
	Author     string     `json:"author,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	EmptyLayer bool       `json:"empty_layer,omitempty"`
}

// ChainIDs computes the chain IDs of a layer stack (OCI image spec):
// ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}
