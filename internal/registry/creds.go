package registry

// Credentials as docker's CLI keeps them: ~/.docker/config.json (or
// $DOCKER_CONFIG/config.json), "auths" holding base64 user:password per
// server, or a credential helper named by "credsStore" (all servers) or
// "credHelpers" (per server): docker-credential-<name> store|get|erase,
// speaking JSON on stdin and stdout. Docker Hub's key is
// https://index.docker.io/v1/; any other registry's its host[:port].

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// AuthConfig is a registry credential, in Docker's field names.
type AuthConfig struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	ServerAddress string `json:"serveraddress,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// Empty reports whether a holds no credential.
func (a AuthConfig) Empty() bool {
	return a.Username == "" && a.Password == "" && a.Auth == "" && a.IdentityToken == "" && a.RegistryToken == ""
}

// ConfigDir is docker's client configuration directory: $DOCKER_CONFIG,
// else ~/.docker.
func ConfigDir() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		home = "/root"
	}
	return filepath.Join(home, ".docker")
}

// ServerKey is the key credentials for registry host are stored under.
func ServerKey(host string) string {
	if host == DockerHub || host == "index.docker.io" || host == dockerHubAPI {
		return DockerHubServer
	}
	return host
}

// hostOfKey turns a stored key ("https://host/v1/", "host") into a host,
// as docker's lookup does.
func hostOfKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "http://"), "https://")
	k, _, _ = strings.Cut(k, "/")
	if k == "index.docker.io" || k == dockerHubAPI {
		return DockerHub
	}
	return k
}

// CredStore is docker's config.json in one directory.
type CredStore struct {
	Dir string
	// exec runs a credential helper; tests replace it.
	helperPath func(name string) string
}

// NewCredStore opens the configuration in dir (ConfigDir() when "").
func NewCredStore(dir string) *CredStore {
	if dir == "" {
		dir = ConfigDir()
	}
	return &CredStore{Dir: dir}
}

func (c *CredStore) file() string { return filepath.Join(c.Dir, "config.json") }

// load reads the file as a generic document, so that what berth does not
// know survives a rewrite.
func (c *CredStore) load() (map[string]json.RawMessage, error) {
	doc := map[string]json.RawMessage{}
	raw, err := os.ReadFile(c.file())
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.file(), err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return doc, nil
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, errdefs.InvalidArgument("%s: %v", c.file(), err)
	}
	return doc, nil
}

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

func (c *CredStore) helperFor(doc map[string]json.RawMessage, key string) string {
	var helpers map[string]string
	if raw, ok := doc["credHelpers"]; ok {
		json.Unmarshal(raw, &helpers)
	}
	host := hostOfKey(key)
	for k, h := range helpers {
		if hostOfKey(k) == host {
			return h
		}
	}
	var store string
	if raw, ok := doc["credsStore"]; ok {
		json.Unmarshal(raw, &store)
	}
	return store
}

// Get returns the credentials stored for registry host (an empty
// AuthConfig when there are none).
func (c *CredStore) Get(ctx context.Context, host string) (AuthConfig, error) {
	doc, err := c.load()
	if err != nil {
		return AuthConfig{}, err
	}
	key := ServerKey(host)
	if h := c.helperFor(doc, key); h != "" {
		return c.helperGet(ctx, h, key)
	}
	var auths map[string]authEntry
	if raw, ok := doc["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return AuthConfig{}, errdefs.InvalidArgument("%s: auths: %v", c.file(), err)
		}
	}
	want := hostOfKey(key)
	for k, e := range auths {
		if k != key && hostOfKey(k) != want {
			continue
		}
		a := AuthConfig{ServerAddress: key, IdentityToken: e.IdentityToken}
		if e.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return AuthConfig{}, errdefs.InvalidArgument("%s: the credentials of %s are not base64", c.file(), k)
			}
			a.Username, a.Password, _ = strings.Cut(string(dec), ":")
		}
		return a, nil
	}
	return AuthConfig{ServerAddress: key}, nil
}

// Store saves credentials for registry host, in its helper when one is
// configured, else base64 in auths. It reports where they went (the file
// when unencrypted, "" for a helper).
func (c *CredStore) Store(ctx context.Context, host string, a AuthConfig) (plainFile string, err error) {
	doc, err := c.load()
	if err != nil {
		return "", err
	}
	key := ServerKey(host)
	auths := map[string]authEntry{}
	if raw, ok := doc["auths"]; ok {
		json.Unmarshal(raw, &auths)
	}
	if h := c.helperFor(doc, key); h != "" {
		secret := a.Password
		user := a.Username
		if a.IdentityToken != "" {
			user, secret = "<token>", a.IdentityToken
		}
		if err := c.helperStore(ctx, h, key, user, secret); err != nil {
			return "", err
		}
		// docker keeps an empty entry, so that the server is listed.
		auths[key] = authEntry{}
	} else {
		e := authEntry{IdentityToken: a.IdentityToken}
		if a.IdentityToken == "" {
			e.Auth = base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password))
		}
		auths[key] = e
		plainFile = c.file()
	}
	return plainFile, c.save(doc, auths)
}

// Erase removes the credentials for host; it reports whether there were
// any.
func (c *CredStore) Erase(ctx context.Context, host string) (bool, error) {
	doc, err := c.load()
	if err != nil {
		return false, err
	}
	key := ServerKey(host)
	auths := map[string]authEntry{}
	if raw, ok := doc["auths"]; ok {
		json.Unmarshal(raw, &auths)
	}
	found := false
	want := hostOfKey(key)
	for k := range auths {
		if k == key || hostOfKey(k) == want {
			delete(auths, k)
			found = true
		}
	}
	if h := c.helperFor(doc, key); h != "" {
		if err := c.helperErase(ctx, h, key); err == nil {
			found = true
		} else if !errdefs.IsNotFound(err) {
			return found, err
		}
	}
	if !found {
		return false, nil
	}
	return true, c.save(doc, auths)
}

func (c *CredStore) save(doc map[string]json.RawMessage, auths map[string]authEntry) error {
	raw, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	doc["auths"] = raw
	out, err := json.MarshalIndent(doc, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", c.Dir, err)
	}
	// Written aside and renamed: a crash leaves the old file or the new.
	tmp, err := os.CreateTemp(c.Dir, "config.json.tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(out, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Follow a symlinked config.json, as docker does, instead of
	// replacing the link.
	target := c.file()
	if t, err := filepath.EvalSymlinks(target); err == nil {
		target = t
	}
	return os.Rename(tmp.Name(), target)
}

// helperCred is the credential helpers' JSON.
type helperCred struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

func (c *CredStore) runHelper(ctx context.Context, name, verb string, stdin []byte) ([]byte, error) {
	bin := "docker-credential-" + name
	if c.helperPath != nil {
		bin = c.helperPath(name)
	}
	cmd := exec.CommandContext(ctx, bin, verb)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = strings.TrimSpace(stderr.String())
		}
		if msg == "" {
			msg = err.Error()
		}
		if strings.Contains(msg, "credentials not found") {
			return nil, errdefs.NotFound("%s", msg)
		}
		var ee *exec.Error
		if errors.As(err, &ee) {
			return nil, errdefs.Unavailable("credential helper %s: %v", bin, ee.Err)
		}
		return nil, errdefs.Unavailable("credential helper %s %s: %s", bin, verb, msg)
	}
	return out.Bytes(), nil
}

func (c *CredStore) helperGet(ctx context.Context, name, key string) (AuthConfig, error) {
	out, err := c.runHelper(ctx, name, "get", []byte(key))
	if errdefs.IsNotFound(err) {
		return AuthConfig{ServerAddress: key}, nil
	}
	if err != nil {
		return AuthConfig{}, err
	}
	var hc helperCred
	if err := json.Unmarshal(out, &hc); err != nil {
		return AuthConfig{}, errdefs.Unavailable("credential helper docker-credential-%s: bad answer: %v", name, err)
	}
	a := AuthConfig{ServerAddress: key, Username: hc.Username, Password: hc.Secret}
	if hc.Username == "<token>" {
		a.Username, a.Password, a.IdentityToken = "", "", hc.Secret
	}
	return a, nil
}

func (c *CredStore) helperStore(ctx context.Context, name, key, user, secret string) error {
	in, _ := json.Marshal(helperCred{ServerURL: key, Username: user, Secret: secret})
	_, err := c.runHelper(ctx, name, "store", in)
	return err
}

func (c *CredStore) helperErase(ctx context.Context, name, key string) error {
	_, err := c.runHelper(ctx, name, "erase", []byte(key))
	return err
}
