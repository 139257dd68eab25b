package engine

import (
	"context"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/registry"
)

// AuthenticateOKBody is POST /auth's answer.
type AuthenticateOKBody struct {
	IdentityToken string `json:"IdentityToken"`
	Status        string `json:"Status"`
}

// RegistryLogin is POST /auth: it checks a credential against its
// registry (ServerAddress; Docker Hub when empty) and stores nothing. It
// needs no image store, so it is a function of the configuration.
func RegistryLogin(ctx context.Context, cfg Config, req AuthConfig) (AuthenticateOKBody, error) {
	c, err := registryClient(cfg, &req)
	if err != nil {
		return AuthenticateOKBody{}, err
	}
	host := registry.NormalizeServer(req.ServerAddress)
	tok, err := c.Login(ctx, host, req.toRegistry())
	if err != nil {
		return AuthenticateOKBody{}, err
	}
	return AuthenticateOKBody{IdentityToken: tok, Status: "Login Succeeded"}, nil
}

// LoginRequest is `docker login`: check the credential, then keep it in
// the client configuration (ConfigDir, "" for $DOCKER_CONFIG or
// ~/.docker), in its credential helper when one is configured.
type LoginRequest struct {
	AuthConfig
	ConfigDir string
}

// LoginResult says where the credential went.
type LoginResult struct {
	Status string
	Server string // the key it is stored under
	// PlaintextFile is the file holding it unencrypted ("" when a helper
	// keeps it), for docker's warning.
	PlaintextFile string
}

// Login checks and stores a credential. With no username it checks the
// stored one (docker's "Authenticating with existing credentials").
func Login(ctx context.Context, cfg Config, req LoginRequest) (LoginResult, error) {
	host := registry.NormalizeServer(req.ServerAddress)
	store := registry.NewCredStore(req.ConfigDir)
	a := req.AuthConfig
	if a.Username == "" && a.IdentityToken == "" {
		stored, err := store.Get(ctx, host)
		if err != nil {
			return LoginResult{}, err
		}
		if stored.Empty() {
			return LoginResult{}, errdefs.InvalidArgument("no stored credentials for %s: give a username", host)
		}
		a = AuthConfig{Username: stored.Username, Password: stored.Password, IdentityToken: stored.IdentityToken}
	}
	a.ServerAddress = host
	ok, err := RegistryLogin(ctx, cfg, a)
	if err != nil {
		return LoginResult{}, err
	}
	if ok.IdentityToken != "" {
		a.Password, a.IdentityToken = "", ok.IdentityToken
	}
	file, err := store.Store(ctx, host, a.toRegistry())
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Status: ok.Status, Server: registry.ServerKey(host), PlaintextFile: file}, nil
}

// StoredUsername is the username stored for server ("" when none): the
// default of login's prompt.
func StoredUsername(ctx context.Context, server, configDir string) string {
	a, err := registry.NewCredStore(configDir).Get(ctx, registry.NormalizeServer(server))
	if err != nil {
		return ""
	}
	return a.Username
}

// LogoutResult is what logout did.
type LogoutResult struct {
	Server  string // as docker names it in its messages
	Removed bool
}

// Logout removes the stored credential of server ("" for Docker Hub).
func Logout(ctx context.Context, server, configDir string) (LogoutResult, error) {
	host := registry.NormalizeServer(server)
	name := host
	if host == registry.DockerHub {
		name = registry.DockerHubServer
	}
	removed, err := registry.NewCredStore(configDir).Erase(ctx, host)
	return LogoutResult{Server: name, Removed: removed}, err
}
