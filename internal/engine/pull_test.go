package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/filters"
	"github.com/berth-dev/berth/internal/registry"
)

// TestJSONMessageShape: the progress stream has the shape of dockerd's
// /images/create messages.
func TestJSONMessageShape(t *testing.T) {
	start := map[string]int64{}
	tests := []struct {
		in   registry.Progress
		want string
	}{
		{registry.Progress{ID: "1", Status: "Pulling from library/busybox"}, `{"status":"Pulling from library/busybox","progressDetail":{},"id":"1"}`},
		{registry.Progress{ID: "abc", Status: "Pull complete"}, `{"status":"Pull complete","progressDetail":{},"id":"abc"}`},
		{registry.Progress{Status: "Digest: sha256:x"}, `{"status":"Digest: sha256:x"}`},
		{registry.Progress{ID: "abc", Status: "Downloading", Current: 1000000, Total: 4000000}, `{"status":"Downloading","progressDetail":{"current":1000000,"total":4000000},"progress":"[============\u003e                                      ]      1MB/4MB","id":"abc"}`},
		{registry.Progress{Aux: &registry.PushResult{Tag: "1", Digest: "sha256:x", Size: 527}}, `{"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:x","Size":527}}`},
	}
	for _, tc := range tests {
		m := toJSONMessage(tc.in, start)
		if tc.in.Current > 0 {
			m.Progress = ProgressString(tc.in.Current, tc.in.Total, 0, 0) // no time estimate
		}
		raw, _ := json.Marshal(m)
		if string(raw) != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.in, raw, tc.want)
		}
	}
}

// TestImageSearch: the registry named in the term, dockerd's filters
// and limit.
func TestImageSearch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/search" || r.URL.Query().Get("q") != "team" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"results": []map[string]any{
			{"name": "team/a", "star_count": 1}, {"name": "team/b", "star_count": 20, "is_official": true}, {"name": "team/c", "star_count": 30},
		}})
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg := Config{RegistryConfig: filepath.Join(t.TempDir(), "none.json")}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	f := filters.NewArgs()
	f.Add("stars", "10")
	res, err := ImageSearch(context.Background(), cfg, ImageSearchRequest{Term: host + "/team", Filters: f})
	if err != nil || len(res) != 2 || res[0].Name != "team/b" {
		t.Fatalf("%+v %v", res, err)
	}
	f.Add("is-official", "false")
	if res, err := ImageSearch(context.Background(), cfg, ImageSearchRequest{Term: host + "/team", Filters: f}); err != nil || len(res) != 1 || res[0].Name != "team/c" {
		t.Errorf("%+v %v", res, err)
	}
	bad := filters.NewArgs()
	bad.Add("color", "red")
	if _, err := ImageSearch(context.Background(), cfg, ImageSearchRequest{Term: host + "/team", Filters: bad}); err == nil {
		t.Error("an unknown filter was accepted")
	}
	if _, err := ImageSearch(context.Background(), cfg, ImageSearchRequest{Term: host + "/team", Limit: 101}); err == nil {
		t.Error("limit 101 was accepted")
	}
}
