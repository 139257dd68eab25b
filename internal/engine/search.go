package engine

import (
	"context"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/filters"
	"github.com/berth-dev/berth/internal/registry"
)

// ImageSearchRequest is GET /images/search (`docker search`).
type ImageSearchRequest struct {
	Term         string // [REGISTRY/]TERM
	Limit        int    // 0: 25
	Filters      filters.Args
	RegistryAuth *AuthConfig
}

// SearchResult is one repository found, in Docker's fields.
type SearchResult struct {
	StarCount   int    `json:"star_count"`
	IsOfficial  bool   `json:"is_official"`
	Name        string `json:"name"`
	IsAutomated bool   `json:"is_automated"`
	Description string `json:"description"`
}

// ImageSearch asks the registry the term names (Docker Hub when it names
// none) for repositories; filters stars=N, is-official and is-automated
// are applied as dockerd applies them.
func ImageSearch(ctx context.Context, cfg Config, req ImageSearchRequest) ([]SearchResult, error) {
	limit := req.Limit
	if limit == 0 {
		limit = 25
	}
	if limit < 1 || limit > 100 {
		return nil, errdefs.InvalidArgument("limit %d is outside the range of [1, 100]", limit)
	}
	if err := req.Filters.Validate("stars", "is-official", "is-automated"); err != nil {
		return nil, err
	}
	minStars := 0
	for _, v := range req.Filters.Get("stars") {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid filter 'stars=%s'", v)
		}
		minStars = max(minStars, n)
	}
	boolFilter := func(key string) (set, want bool, err error) {
		vs := req.Filters.Get(key)
		if len(vs) == 0 {
			return false, false, nil
		}
		switch strings.ToLower(vs[0]) {
		case "true", "1":
			return true, true, nil
		case "false", "0":
			return true, false, nil
		}
		return false, false, errdefs.InvalidArgument("invalid filter '%s=%s'", key, vs[0])
	}
	offSet, offWant, err := boolFilter("is-official")
	if err != nil {
		return nil, err
	}
	autoSet, autoWant, err := boolFilter("is-automated")
	if err != nil {
		return nil, err
	}
	host, term := registry.DockerHub, req.Term
	if i := strings.IndexByte(term, '/'); i >= 0 {
		first := term[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			host, term = first, term[i+1:]
		}
	}
	c, err := registryClient(cfg, req.RegistryAuth)
	if err != nil {
		return nil, err
	}
	res, err := c.Search(ctx, host, term, limit)
	if err != nil {
		return nil, err
	}
	out := []SearchResult{}
	for _, r := range res {
		if r.StarCount < minStars || (offSet && r.IsOfficial != offWant) || (autoSet && r.IsAutomated != autoWant) {
			continue
		}
		out = append(out, SearchResult{StarCount: r.StarCount, IsOfficial: r.IsOfficial, Name: r.Name, IsAutomated: r.IsAutomated, Description: r.Description})
		if len(out) == limit {
			break
		}
	}
	return out, nil
}
