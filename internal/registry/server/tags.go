package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// page applies the spec's pagination: the entries after last, at most n
// of them (all when n is absent). more reports that entries remain.
func page(all []string, q url.Values) (out []string, n int, more bool, err error) {
	n = -1
	if v := q.Get("n"); v != "" {
		n, err = strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, 0, false, errorf(http.StatusBadRequest, codePaginationInvalid, "invalid page size n=%q: want a number >= 0", v)
		}
	}
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		all = all[i:]
	}
	if n >= 0 && len(all) > n {
		return all[:n], n, true, nil
	}
	return all, n, false, nil
}

func writeJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}

func nextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func (s *Server) tagsList(w http.ResponseWriter, r *http.Request, name string) error {
	if s.proxy != nil && s.proxyTags(w, r, name) {
		return nil
	}
	if !s.store.repoExists(name) {
		return errorf(http.StatusNotFound, codeNameUnknown, "repository %s is not known to this registry", name)
	}
	all, err := s.store.listDir(filepath.Join(s.store.repoPath(name), "_tags"))
	if err != nil {
		return err
	}
	tags := all[:0]
	for _, t := range all {
		if validTag(t) {
			tags = append(tags, t)
		}
	}
	out, n, more, err := page(tags, r.URL.Query())
	if err != nil {
		return err
	}
	if more && len(out) > 0 {
		nextLink(w, "/v2/"+name+"/tags/list", n, out[len(out)-1])
	}
	if out == nil {
		out = []string{}
	}
	return writeJSON(w, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, out})
}

func (s *Server) catalog(w http.ResponseWriter, r *http.Request) error {
	repos, err := s.store.repositories()
	if err != nil {
		return err
	}
	out, n, more, err := page(repos, r.URL.Query())
	if err != nil {
		return err
	}
	if more && len(out) > 0 {
		nextLink(w, "/v2/_catalog", n, out[len(out)-1])
	}
	if out == nil {
		out = []string{}
	}
	return writeJSON(w, struct {
		Repositories []string `json:"repositories"`
	}{out})
}

// searchResult is one entry of Docker Hub's /v1/search answer.
type searchResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	StarCount   int    `json:"star_count"`
	IsOfficial  bool   `json:"is_official"`
	IsAutomated bool   `json:"is_automated"`
}

// search answers GET /v1/search?q=&n=&page= in Docker Hub's shape over the
// catalog: the repositories whose name contains the query, so that
// `docker search host:port/term` works against this registry.
func (s *Server) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	term := strings.ToLower(q.Get("q"))
	size, _ := strconv.Atoi(q.Get("n"))
	if size <= 0 || size > 100 {
		size = 25
	}
	pg, _ := strconv.Atoi(q.Get("page"))
	if pg <= 0 {
		pg = 1
	}
	repos, err := s.store.repositories()
	if err != nil {
		writeError(w, r, err)
		return
	}
	var match []searchResult
	for _, name := range repos {
		if strings.Contains(name, term) {
			match = append(match, searchResult{Name: name})
		}
	}
	pages := (len(match) + size - 1) / size
	from := len(match)
	if pg <= pages { // also keeps (pg-1)*size from overflowing
		from = (pg - 1) * size
	}
	to := min(from+size, len(match))
	writeJSON(w, struct {
		NumResults int            `json:"num_results"`
		NumPages   int            `json:"num_pages"`
		Page       int            `json:"page"`
		PageSize   int            `json:"page_size"`
		Query      string         `json:"query"`
		Results    []searchResult `json:"results"`
	}{len(match), pages, pg, size, q.Get("q"), append([]searchResult{}, match[from:to]...)})
}
