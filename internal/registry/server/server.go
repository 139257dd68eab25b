// Package server is berth's private registry: the OCI distribution spec
// v1.1 (pull, push, chunked and monolithic uploads, cross-repository
// mounts, tags, catalog, deletes, the referrers API) over a filesystem
// store, with htpasswd basic or token auth, a read-only mode, Docker
// Hub's /v1/search, an online garbage collector and a pull-through cache
// mode.
package server

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config configures a Server.
type Config struct {
	// Root is the storage directory.
	Root string
	// Htpasswd is an htpasswd file of bcrypt entries; empty: no auth.
	Htpasswd string
	// TokenAuth answers with Bearer challenges and serves /token (docker
	// login's token flow) instead of asking for Basic credentials.
	TokenAuth bool
	// Realm is the token endpoint's URL; empty: this server's /token.
	Realm string
	// Service names this registry in tokens; empty: "berth-registry".
	Service string
	// TokenTTL is how long a token lives; zero: 5 minutes.
	TokenTTL time.Duration
	// ReadOnly refuses every write.
	ReadOnly bool
	// GCGrace protects blobs and links younger than it from the garbage
	// collector (a push uploads blobs before its manifest); zero: 1 hour.
	GCGrace time.Duration
	// MaxBlobSize refuses a blob upload that grows past it (413
	// SIZE_INVALID) and cancels it; zero: no limit, as in docker's
	// registry.
	MaxBlobSize int64
	// BodyTimeout ends a request whose body sends nothing, or a response
	// whose client reads nothing, for that long; zero: a minute.
	BodyTimeout time.Duration
	// Log receives one line per request; nil: none.
	Log io.Writer
	// ProxyRemoteURL makes the server a pull-through cache of this
	// upstream registry (read-only to clients); ProxyUsername and
	// ProxyPassword log in to it (anonymous when empty).
	ProxyRemoteURL               string
	ProxyUsername, ProxyPassword string
}

// maxManifestSize is the largest manifest accepted (the spec's 4 MiB).
const maxManifestSize = 4 << 20

// Server is an http.Handler serving one registry root.
type Server struct {
	cfg   Config
	store *store
	auth  *authenticator
	proxy *proxy // nil unless a pull-through cache

	// gcMu orders writes against the garbage collector's deletes: a write
	// holds it shared, a delete of one collected file exclusive.
	gcMu sync.RWMutex
	// recent holds digests a write or a HEAD has touched lately, which the
	// collector spares (the push that HEADed a blob will name it next).
	recentMu    sync.Mutex
	recent      map[digest]time.Time
	recentLimit int

	sessMu      sync.Mutex
	sessions    map[string]*session
	maxSessions int
}

// New opens (creating) the store under cfg.Root.
func New(cfg Config) (*Server, error) {
	if cfg.Service == "" {
		cfg.Service = "berth-registry"
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = 5 * time.Minute
	}
	if cfg.GCGrace == 0 {
		cfg.GCGrace = time.Hour
	}
	st, err := newStore(cfg.Root)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: st, recent: map[digest]time.Time{}, sessions: map[string]*session{}, maxSessions: defaultMaxSessions}
	if cfg.Htpasswd != "" {
		if s.auth, err = newAuthenticator(cfg, st.r); err != nil {
			return nil, err
		}
	} else if cfg.TokenAuth {
		return nil, fmt.Errorf("token auth needs an htpasswd file to check credentials against")
	}
	if cfg.ProxyRemoteURL != "" {
		if s.proxy, err = newProxy(cfg.ProxyRemoteURL, cfg.ProxyUsername, cfg.ProxyPassword); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Root is the absolute storage directory.
func (s *Server) Root() string { return s.store.root }

// maxRecent bounds the touched set between collections (a server that
// never collects would otherwise grow it forever): past it, entries
// older than the grace window, which no collection would spare anyway,
// are dropped.
const maxRecent = 1 << 16

func (s *Server) touch(ds ...digest) {
	now := time.Now()
	s.recentMu.Lock()
	for _, d := range ds {
		s.recent[d] = now
	}
	if len(s.recent) > max(maxRecent, s.recentLimit) {
		for d, t := range s.recent {
			if now.Sub(t) > s.cfg.GCGrace {
				delete(s.recent, d)
			}
		}
		// What remains is young: let it double before the next pass, so
		// that the passes cost O(1) per touch.
		s.recentLimit = 2 * len(s.recent)
	}
	s.recentMu.Unlock()
}

// route is a parsed /v2/ request path.
type route struct {
	kind string // base, catalog, tags, manifest, blob, upload, referrers
	name string
	ref  string // tag or digest, upload id
}

// parseRoute reads a /v2/ path from the right, as the final segments
// determine the endpoint and the name may hold any number of slashes. It
// works on the escaped path: a name with an escaped byte is invalid.
func parseRoute(escaped string) (route, bool) {
	rest, ok := strings.CutPrefix(escaped, "/v2/")
	if !ok {
		return route{}, false
	}
	if rest == "" {
		return route{kind: "base"}, true
	}
	if rest == "_catalog" {
		return route{kind: "catalog"}, true
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	name := func(k int) string { return strings.Join(segs[:k], "/") }
	unesc := func(s string) string {
		u, err := url.PathUnescape(s)
		if err != nil {
			return "\x00"
		}
		return u
	}
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		return route{kind: "tags", name: name(n - 2)}, true
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		return route{kind: "upload", name: name(n - 3), ref: unesc(segs[n-1])}, true
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		return route{kind: "upload", name: name(n - 2)}, true
	case n >= 3 && segs[n-2] == "blobs":
		return route{kind: "blob", name: name(n - 2), ref: unesc(segs[n-1])}, true
	case n >= 3 && segs[n-2] == "manifests":
		return route{kind: "manifest", name: name(n - 2), ref: unesc(segs[n-1])}, true
	case n >= 3 && segs[n-2] == "referrers":
		return route{kind: "referrers", name: name(n - 2), ref: unesc(segs[n-1])}, true
	}
	return route{}, false
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	lw := &logWriter{ResponseWriter: w, status: http.StatusOK, rc: http.NewResponseController(w), timeout: s.bodyTimeout()}
	r, finish := s.withBodyTimeout(w, r)
	defer finish()
	lw.renew()
	// The final flush of the response gets its time too, after the server
	// has discarded what the handler left of the body (bounded by finish).
	defer func() { lw.rc.SetWriteDeadline(time.Now().Add(2 * lw.timeout)) }()
	s.serve(lw, r)
	if s.cfg.Log != nil {
		fmt.Fprintf(s.cfg.Log, "%s %s %s %d %d %s\n", start.UTC().Format(time.RFC3339), r.Method, r.URL.RequestURI(), lw.status, lw.n, time.Since(start).Round(time.Microsecond))
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case p == "/token" && s.auth != nil && s.cfg.TokenAuth:
		s.auth.serveToken(w, r)
		return
	case p == "/v1/_ping":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"standalone":true}`)
		return
	case p == "/v1/search":
		if !s.authorize(w, r, access{typ: "registry", name: "catalog", action: "*"}) {
			return
		}
		s.search(w, r)
		return
	case p == "/v2":
		p = "/v2/"
	}
	rt, ok := parseRoute(p)
	if !ok {
		writeError(w, r, errorf(http.StatusNotFound, codeNameUnknown, "no such endpoint: %s %s", r.Method, p))
		return
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if rt.kind != "base" && rt.kind != "catalog" && !validName(rt.name) {
		writeError(w, r, errorf(http.StatusBadRequest, codeNameInvalid, "invalid repository name %q: want lowercase components [a-z0-9] separated by '.', '_', '__', '-' or '/', at most %d bytes", rt.name, maxNameLen))
		return
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	need := access{typ: "repository", name: rt.name, action: "pull"}
	switch {
	case rt.kind == "base":
		need = access{}
	case rt.kind == "catalog":
		need = access{typ: "registry", name: "catalog", action: "*"}
	case r.Method == http.MethodDelete:
		need.action = "delete"
	case write:
		need.action = "push"
	}
	needs := []access{need}
	if from := r.URL.Query().Get("from"); rt.kind == "upload" && r.Method == http.MethodPost && from != "" && validName(from) {
		// A cross-repository mount reads the source: ask for both scopes,
		// as docker's token requests carry both.
		needs = append(needs, access{typ: "repository", name: from, action: "pull"})
	}
	if !s.authorize(w, r, needs...) {
		return
	}
	if write && s.cfg.ReadOnly {
		writeError(w, r, errorf(http.StatusMethodNotAllowed, codeUnsupported, "the registry is read-only"))
		return
	}
	if write && s.proxy != nil {
		writeError(w, r, errorf(http.StatusMethodNotAllowed, codeUnsupported, "the registry is a pull-through cache of %s: push there", s.proxy.base))
		return
	}
	var err error
	switch rt.kind + " " + r.Method {
	case "base GET", "base HEAD":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method == http.MethodGet {
			io.WriteString(w, "{}")
		}
	case "catalog GET":
		err = s.catalog(w, r)
	case "tags GET":
		err = s.tagsList(w, r, rt.name)
	case "blob GET", "blob HEAD":
		err = s.getBlob(w, r, rt.name, rt.ref)
	case "blob DELETE":
		err = s.deleteBlob(w, r, rt.name, rt.ref)
	case "upload POST":
		if rt.ref != "" {
			err = errorf(http.StatusMethodNotAllowed, codeUnsupported, "POST to an upload session: use PATCH or PUT")
			break
		}
		err = s.startUpload(w, r, rt.name)
	case "upload GET":
		err = s.uploadStatus(w, r, rt.name, rt.ref)
	case "upload PATCH":
		err = s.patchUpload(w, r, rt.name, rt.ref)
	case "upload PUT":
		err = s.finishUpload(w, r, rt.name, rt.ref)
	case "upload DELETE":
		err = s.cancelUpload(w, r, rt.name, rt.ref)
	case "manifest GET", "manifest HEAD":
		err = s.getManifest(w, r, rt.name, rt.ref)
	case "manifest PUT":
		err = s.putManifest(w, r, rt.name, rt.ref)
	case "manifest DELETE":
		err = s.deleteManifest(w, r, rt.name, rt.ref)
	case "referrers GET":
		err = s.referrers(w, r, rt.name, rt.ref)
	default:
		err = errorf(http.StatusMethodNotAllowed, codeUnsupported, "%s is not supported on %s", r.Method, p)
	}
	if err != nil {
		if _, ok := err.(*apiError); !ok && s.cfg.Log != nil {
			fmt.Fprintf(s.cfg.Log, "error: %s %s: %v\n", r.Method, p, err)
		}
		writeError(w, r, err)
	}
}

// logWriter records the status and size of a response for the log line.
// Every write renews the connection's write deadline: a client that
// stops reading a response (a slow-read attack, a stuck peer) loses its
// connection after the timeout instead of holding it and the handler
// forever, while a large blob that keeps moving is never cut off. Files
// go out by sendfile in chunks through io.ReaderFrom.
type logWriter struct {
	http.ResponseWriter
	status  int
	n       int64
	rc      *http.ResponseController
	timeout time.Duration
}

// writeChunk is how much one deadline covers when a file is sent: small
// enough that a slow but live client (256 KiB a minute) is not cut off.
const writeChunk = 256 << 10

func (l *logWriter) renew() {
	if l.rc != nil {
		l.rc.SetWriteDeadline(time.Now().Add(l.timeout))
	}
}

func (l *logWriter) WriteHeader(code int) {
	l.status = code
	l.ResponseWriter.WriteHeader(code)
}

func (l *logWriter) Write(b []byte) (int, error) {
	l.renew()
	n, err := l.ResponseWriter.Write(b)
	l.n += int64(n)
	return n, err
}

func (l *logWriter) ReadFrom(r io.Reader) (int64, error) {
	// Unwrap the caller's limit (http.ServeContent's CopyN) so that each
	// chunk is one *io.LimitedReader of the file, which sendfile takes.
	limit := int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		r, limit = lr.R, lr.N
	}
	var total int64
	for limit != 0 {
		chunk := int64(writeChunk)
		if limit > 0 {
			chunk = min(chunk, limit)
		}
		l.renew()
		n, err := io.Copy(l.ResponseWriter, &io.LimitedReader{R: r, N: chunk})
		total += n
		l.n += n
		if limit > 0 {
			limit -= n
		}
		if err != nil || n < chunk {
			return total, err
		}
	}
	return total, nil
}

func (l *logWriter) Unwrap() http.ResponseWriter { return l.ResponseWriter }
