package server

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// access is one permission: typ "repository" with a name and an action
// (pull, push, delete), or "registry" "catalog" "*". The zero value is
// "any authenticated caller" (GET /v2/).
type access struct{ typ, name, action string }

func (a access) scope() string { return a.typ + ":" + a.name + ":" + a.action }

// authenticator checks htpasswd credentials and, in token mode, issues
// and verifies the server's own signed tokens: base64url(claims) "."
// base64url(HMAC-SHA256(claims)), under a key kept in the root so that
// tokens outlive a restart. Every user of the htpasswd file may pull,
// push and delete in every repository and list the catalog.
type authenticator struct {
	cfg   Config
	users map[string][]byte
	key   []byte

	// dummy is a bcrypt hash of the users' cost, checked against for an
	// unknown user so that a failure takes as long whoever asks (htpasswd
	// -B writes cost 5 by default: a fixed cost 10 would tell names apart).
	dummy []byte

	mu    sync.Mutex
	valid map[[32]byte]time.Time // credentials bcrypt accepted, until when
}

func newAuthenticator(cfg Config, root *os.Root) (*authenticator, error) {
	users, err := readHtpasswd(cfg.Htpasswd)
	if err != nil {
		return nil, err
	}
	a := &authenticator{cfg: cfg, users: users, valid: map[[32]byte]time.Time{}}
	cost := bcrypt.MinCost
	for user, h := range users {
		c, err := bcrypt.Cost(h)
		if err != nil {
			return nil, fmt.Errorf("%s: user %q: invalid bcrypt hash: %v", cfg.Htpasswd, user, err)
		}
		cost = max(cost, c)
	}
	if a.dummy, err = bcrypt.GenerateFromPassword([]byte(randomHex(8)), cost); err != nil {
		return nil, err
	}
	if cfg.TokenAuth {
		if a.key, err = tokenKey(root, "token.key"); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// readHtpasswd reads user:bcrypt-hash lines; other hash kinds are refused
// by name, as they are unsafe (or, for crypt, unportable).
func readHtpasswd(path string) (map[string][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read htpasswd file: %w", err)
	}
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		user, hash, ok := strings.Cut(l, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: want user:hash", path, line)
		}
		if !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("%s:%d: user %q: only bcrypt entries are supported (htpasswd -B)", path, line, user)
		}
		users[user] = []byte(hash)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s: no users", path)
	}
	return users, nil
}

// minKeyLen is the shortest signing key accepted: a key file left empty
// or cut short (a crash while it was first written, a hand-made file)
// would let anyone sign tokens.
const minKeyLen = 32

// tokenKey reads the signing key, making it on first use. The key is
// written whole to a temporary file and linked into place, so no process
// ever reads a part of it; a short key is replaced.
func tokenKey(root *os.Root, path string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		key, err := root.ReadFile(path)
		if err == nil && len(key) >= minKeyLen {
			return key, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if attempt > 0 {
			return nil, fmt.Errorf("%s: signing key shorter than %d bytes", path, minKeyLen)
		}
		if err == nil {
			// Too short to be safe: its tokens are not worth keeping.
			if err := root.Remove(path); err != nil {
				return nil, err
			}
		}
		tmp := path + "." + randomHex(8)
		if err := writeSynced(root, tmp, []byte(randomHex(32))); err != nil {
			root.Remove(tmp)
			return nil, err
		}
		err = root.Link(tmp, path) // fails if a concurrent start made one: read it
		root.Remove(tmp)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
}

// writeSynced writes a new private file and syncs it, so that a crash
// after it is linked into place cannot leave it empty.
func writeSynced(root *os.Root, path string, b []byte) error {
	f, err := root.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// check verifies a user's password, remembering a success for a minute
// (bcrypt costs tens of milliseconds by design; Basic auth sends the
// password with every request).
func (a *authenticator) check(user, pass string) bool {
	hash, ok := a.users[user]
	if !ok {
		// Spend the same time as for a known user.
		bcrypt.CompareHashAndPassword(a.dummy, []byte(pass))
		return false
	}
	k := sha256.Sum256([]byte(user + "\x00" + pass))
	a.mu.Lock()
	until, hit := a.valid[k]
	a.mu.Unlock()
	if hit && time.Now().Before(until) {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	a.mu.Lock()
	a.valid[k] = time.Now().Add(time.Minute)
	a.mu.Unlock()
	return true
}

type tokenAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type claims struct {
	Issuer   string        `json:"iss"`
	Subject  string        `json:"sub"`
	Audience string        `json:"aud"`
	Expires  int64         `json:"exp"`
	IssuedAt int64         `json:"iat"`
	Access   []tokenAccess `json:"access"`
}

func (a *authenticator) sign(c claims) string {
	body, _ := json.Marshal(c)
	mac := hmac.New(sha256.New, a.key)
	mac.Write(body)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(body) + "." + enc.EncodeToString(mac.Sum(nil))
}

func (a *authenticator) verify(tok string) (*claims, bool) {
	enc := base64.RawURLEncoding
	b64, sig64, ok := strings.Cut(tok, ".")
	if !ok {
		return nil, false
	}
	body, err1 := enc.DecodeString(b64)
	sig, err2 := enc.DecodeString(sig64)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	mac := hmac.New(sha256.New, a.key)
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, false
	}
	var c claims
	if json.Unmarshal(body, &c) != nil || c.Audience != a.cfg.Service || time.Now().Unix() >= c.Expires {
		return nil, false
	}
	return &c, true
}

func (c *claims) grants(need access) bool {
	if need == (access{}) {
		return true
	}
	for _, g := range c.Access {
		if g.Type != need.typ || g.Name != need.name {
			continue
		}
		for _, act := range g.Actions {
			if act == need.action || act == "*" {
				return true
			}
		}
	}
	return false
}

// parseScope reads "repository:name:pull,push" (the name may not hold a
// colon; a "repository(plugin)" class is accepted as the type).
func parseScope(s string) (tokenAccess, bool) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return tokenAccess{}, false
	}
	typ, _, _ = strings.Cut(typ, "(")
	return tokenAccess{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")}, true
}

// granted is what an authenticated user gets of what they asked for.
func granted(req tokenAccess) (tokenAccess, bool) {
	switch {
	case req.Type == "repository" && validName(req.Name):
		var acts []string
		for _, act := range req.Actions {
			switch act {
			case "pull", "push", "delete", "*":
				acts = append(acts, act)
			}
		}
		req.Actions = acts
		return req, len(acts) > 0
	case req.Type == "registry" && req.Name == "catalog":
		req.Actions = []string{"*"}
		return req, true
	}
	return tokenAccess{}, false
}

// serveToken is the token endpoint docker login and pulls use: GET with
// Basic credentials (and ?scope=, ?service=), or the OAuth2 password
// grant by POST.
func (a *authenticator) serveToken(w http.ResponseWriter, r *http.Request) {
	var user, pass string
	var ok bool
	var scopes []string
	switch r.Method {
	case http.MethodGet:
		user, pass, ok = r.BasicAuth()
		scopes = r.URL.Query()["scope"]
	case http.MethodPost:
		if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "password" {
			writeError(w, r, errorf(http.StatusBadRequest, codeUnsupported, "only grant_type=password is supported"))
			return
		}
		user, pass, ok = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		scopes = r.PostForm["scope"]
	default:
		writeError(w, r, errorf(http.StatusMethodNotAllowed, codeUnsupported, "use GET or POST"))
		return
	}
	if !ok || !a.check(user, pass) {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+a.cfg.Service+`"`)
		writeError(w, r, errorf(http.StatusUnauthorized, codeUnauthorized, "incorrect username or password"))
		return
	}
	now := time.Now()
	c := claims{Issuer: a.cfg.Service, Subject: user, Audience: a.cfg.Service, IssuedAt: now.Unix(), Expires: now.Add(a.cfg.TokenTTL).Unix(), Access: []tokenAccess{}}
	for _, field := range scopes {
		for _, sc := range strings.Fields(field) {
			if req, ok := parseScope(sc); ok {
				if g, ok := granted(req); ok {
					c.Access = append(c.Access, g)
				}
			}
		}
	}
	tok := a.sign(c)
	writeJSON(w, map[string]any{"token": tok, "access_token": tok, "expires_in": int(a.cfg.TokenTTL.Seconds()), "issued_at": now.UTC().Format(time.RFC3339)})
}

// allowed reports whether r's credentials grant need.
func (s *Server) allowed(r *http.Request, need access) bool {
	if s.auth == nil {
		return true
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.cfg.TokenAuth {
		c, ok := s.auth.verify(strings.TrimSpace(tok))
		return ok && c.grants(need)
	}
	// Basic credentials are accepted in token mode too: docker's daemon
	// sends them to /v1/search, and they open no more than a token
	// would (every user may do everything).
	user, pass, ok := r.BasicAuth()
	return ok && s.auth.check(user, pass)
}

// authorize answers 401 with the challenge a client needs unless r's
// credentials grant every one of needs.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, needs ...access) bool {
	ok := true
	for _, n := range needs {
		ok = ok && s.allowed(r, n)
	}
	if ok {
		return true
	}
	if s.cfg.TokenAuth {
		realm := s.cfg.Realm
		if realm == "" {
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			realm = scheme + "://" + r.Host + "/token"
		}
		ch := fmt.Sprintf(`Bearer realm=%q,service=%q`, realm, s.cfg.Service)
		var scopes []string
		for _, n := range needs {
			if n != (access{}) {
				scopes = append(scopes, n.scope())
			}
		}
		if len(scopes) > 0 {
			ch += fmt.Sprintf(`,scope=%q`, strings.Join(scopes, " "))
		}
		if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			ch += `,error="insufficient_scope"`
		}
		w.Header().Set("WWW-Authenticate", ch)
	} else {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q`, s.cfg.Service))
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	writeError(w, r, errorf(http.StatusUnauthorized, codeUnauthorized, "authentication required").withDetail(authDetail(needs)))
	return false
}

func authDetail(needs []access) any {
	var d []map[string]string
	for _, n := range needs {
		if n != (access{}) {
			d = append(d, map[string]string{"Type": n.typ, "Name": n.name, "Action": n.action})
		}
	}
	if d == nil {
		return nil
	}
	return d
}
