package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/registry"
)

// JSONMessage is one message of Docker's progress stream
// (POST /images/create, POST /images/{name}/push), in its field order.
type JSONMessage struct {
	Status         string          `json:"status,omitempty"`
	ProgressDetail *ProgressDetail `json:"progressDetail,omitempty"`
	Progress       string          `json:"progress,omitempty"`
	ID             string          `json:"id,omitempty"`
	Error          *JSONError      `json:"errorDetail,omitempty"`
	ErrorMessage   string          `json:"error,omitempty"`
	Aux            json.RawMessage `json:"aux,omitempty"`
}

// ProgressDetail is a transfer's position.
type ProgressDetail struct {
	Current int64 `json:"current,omitempty"`
	Total   int64 `json:"total,omitempty"`
}

// JSONError is the error a stream ends with.
type JSONError struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// AuthConfig is a registry credential (the X-Registry-Auth header's and
// POST /auth's body).
type AuthConfig struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	Email         string `json:"email,omitempty"`
	ServerAddress string `json:"serveraddress,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// ImagePullRequest is POST /images/create?fromImage= (`docker pull`).
type ImagePullRequest struct {
	Reference string // NAME[:TAG|@DIGEST]
	Platform  string // os/arch[/variant]
	AllTags   bool
	// RegistryAuth is the credential to use; nil takes the user's docker
	// configuration (the in-process CLI's case).
	RegistryAuth *AuthConfig
	// Progress receives docker's progress messages; may be nil.
	Progress func(JSONMessage)
}

// ImagePullResult names what was pulled: the reference docker's CLI
// prints last (the repository alone for --all-tags).
type ImagePullResult struct {
	Reference string
	Images    []PulledImage
}

// PulledImage is one image stored by a pull.
type PulledImage struct {
	Reference string // normalised
	Digest    string
	ID        string
	UpToDate  bool
}

// staticKeychain answers with one credential (an API client's).
type staticKeychain struct{ a registry.AuthConfig }

func (k staticKeychain) Get(context.Context, string) (registry.AuthConfig, error) { return k.a, nil }

func (a *AuthConfig) toRegistry() registry.AuthConfig {
	return registry.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth, ServerAddress: a.ServerAddress, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
}

// registryClient is a client under berth's registry configuration.
func registryClient(cfg Config, auth *AuthConfig) (*registry.Client, error) {
	path := cfg.RegistryConfig
	if path == "" {
		path = registry.DefaultConfigFile
	}
	opts, err := registry.LoadConfig(path)
	if err != nil {
		return nil, err
	}
	if err := applyConcurrency(cfg, &opts); err != nil {
		return nil, err
	}
	var kc registry.Keychain = registry.NewCredStore("")
	if auth != nil {
		kc = staticKeychain{auth.toRegistry()}
	}
	return registry.New(opts, kc), nil
}

// toJSONMessage renders a registry progress line as docker's daemon sends
// it.
func toJSONMessage(p registry.Progress, start map[string]int64) JSONMessage {
	if p.Aux != nil {
		raw, _ := json.Marshal(p.Aux)
		return JSONMessage{ProgressDetail: &ProgressDetail{}, Aux: raw}
	}
	m := JSONMessage{Status: p.Status, ID: p.ID}
	if p.ID != "" {
		m.ProgressDetail = &ProgressDetail{}
	}
	if p.Total > 0 || p.Current > 0 {
		m.ProgressDetail = &ProgressDetail{Current: p.Current, Total: p.Total}
		if _, ok := start[p.ID]; !ok {
			start[p.ID] = time.Now().Unix()
		}
		m.Progress = ProgressString(p.Current, p.Total, 0, start[p.ID])
	}
	return m
}

// ProgressString is docker's progress bar ("[==>   ]  1.2MB/5MB 3s")
// for a terminal width columns wide (0: the daemon's 200); start is the
// transfer's start (Unix seconds), 0 for no time estimate.
func ProgressString(current, total int64, width int, start int64) string {
	if width <= 0 {
		width = 200
	}
	if current <= 0 && total <= 0 {
		return ""
	}
	if total <= 0 {
		return fmt.Sprintf("%8v", HumanSize4(current))
	}
	pct := int(float64(current)/float64(total)*100) / 2
	pct = min(pct, 50)
	var bar, nums, left string
	if width > 110 {
		bar = "[" + strings.Repeat("=", pct) + ">" + strings.Repeat(" ", max(50-pct, 0)) + "] "
	}
	nums = fmt.Sprintf("%8v/%v", HumanSize4(current), HumanSize4(total))
	if current > total {
		nums = fmt.Sprintf("%8v", HumanSize4(current))
	}
	if current > 0 && start > 0 && pct < 50 && width > 50 {
		elapsed := time.Since(time.Unix(start, 0))
		per := elapsed / time.Duration(current)
		d := time.Duration(total-current) * per
		left = " " + ((d / time.Second) * time.Second).String()
	}
	return bar + nums + left
}

// HumanSize4 renders bytes in decimal units with four significant digits,
// as docker's units.HumanSize.
func HumanSize4(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	return strconv.FormatFloat(f, 'g', 4, 64) + units[i]
}

// ImagePull is POST /images/create?fromImage= (`docker pull`): the image
// (or every tag, with AllTags) stored with the registry's manifest and
// blobs as they came, and a pull event per image.
func (e *Engine) ImagePull(ctx context.Context, req ImagePullRequest) (ImagePullResult, error) {
	ref, err := image.ParseNormalized(req.Reference)
	if err != nil {
		return ImagePullResult{}, err
	}
	if !req.AllTags && ref.NameOnly() {
		ref.Tag = "latest"
	}
	c, err := registryClient(e.Config, req.RegistryAuth)
	if err != nil {
		return ImagePullResult{}, err
	}
	start := map[string]int64{}
	opts := registry.PullOptions{Platform: req.Platform, AllTags: req.AllTags}
	if req.Progress != nil {
		opts.Progress = func(p registry.Progress) { req.Progress(toJSONMessage(p, start)) }
	}
	res, err := c.Pull(ctx, e.Images, ref, opts)
	if err != nil {
		return ImagePullResult{}, err
	}
	out := ImagePullResult{Reference: ref.String()}
	for _, r := range res {
		out.Images = append(out.Images, PulledImage{Reference: r.Reference, Digest: r.Digest.String(), ID: r.ID.String(), UpToDate: r.UpToDate})
		e.Emit(ctx, e.refEvent("pull", r.ID, r.Reference))
	}
	return out, nil
}

// Reference is a parsed image reference (docker.io/library/busybox:latest).
type Reference = image.Reference

// ParseNormalizedName parses an image reference as docker normalises it,
// adding no tag.
func ParseNormalizedName(s string) (Reference, error) { return image.ParseNormalized(s) }

// DefaultConfigFile is berth's registry configuration (daemon.json keys).
const DefaultConfigFile = registry.DefaultConfigFile

// refEvent is dockerd's event of a pull or push: the actor is the
// familiar reference, its name attribute the familiar repository, with
// the image's labels.
func (e *Engine) refEvent(action string, id digest.Digest, ref string) container.Event {
	ev := e.imageEvent(action, id, "")
	ev.ID = image.FamiliarString(ref)
	if r, err := image.ParseNormalized(ref); err == nil {
		ev.Attributes["name"] = r.FamiliarName()
	}
	return ev
}
