package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/filters"
	"github.com/berth-dev/berth/internal/term"
)

func (a *app) loginCommand() *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			if password != "" {
				fmt.Fprintln(a.stderr, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
				if passwordStdin {
					return cliError{errors.New("--password and --password-stdin are mutually exclusive")}
				}
			}
			if passwordStdin {
				if user == "" {
					return cliError{errors.New("Must provide --username with --password-stdin")}
				}
				raw, err := io.ReadAll(a.stdin)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(raw), "\r\n")
			}
			req := engine.LoginRequest{AuthConfig: engine.AuthConfig{Username: user, Password: password, ServerAddress: server}}
			if user != "" && password == "" || user == "" && password != "" || user == "" && !passwordStdin {
				// docker first tries the stored credential when no
				// username is given, then prompts on a terminal.
				if user == "" && password == "" {
					if res, err := engine.Login(ctx, a.cfg, req); err == nil {
						fmt.Fprintln(a.stdout, "Authenticating with existing credentials...")
						return a.loggedIn(res)
					}
				}
				in, ok := a.stdin.(*os.File)
				if !ok || !term.IsTerminal(in) {
					return cliError{errors.New("Error: Cannot perform an interactive login from a non TTY device")}
				}
				var err error
				if req.Username, req.Password, err = a.prompt(ctx, in, server, user); err != nil {
					return err
				}
			}
			res, err := engine.Login(ctx, a.cfg, req)
			if err != nil {
				return err
			}
			return a.loggedIn(res)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&user, "username", "u", "", "Username")
	fl.StringVarP(&password, "password", "p", "", "Password or Personal Access Token (PAT)")
	fl.BoolVar(&passwordStdin, "password-stdin", false, "Take the Password or Personal Access Token (PAT) from stdin")
	return cmd
}

func (a *app) loggedIn(res engine.LoginResult) error {
	if res.PlaintextFile != "" {
		fmt.Fprintf(a.stderr, "WARNING! Your credentials are stored unencrypted in '%s'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n\n", res.PlaintextFile)
	}
	fmt.Fprintln(a.stdout, res.Status)
	return nil
}

// prompt asks for a username (the stored one as default) and a password
// (not echoed) on the terminal in.
func (a *app) prompt(ctx context.Context, in *os.File, server, user string) (string, string, error) {
	r := bufio.NewReader(in)
	if user == "" {
		def := engine.StoredUsername(ctx, server, "")
		if def != "" {
			fmt.Fprintf(a.stdout, "Username (%s): ", def)
		} else {
			fmt.Fprint(a.stdout, "Username: ")
		}
		line, _ := r.ReadString('\n')
		user = strings.TrimSpace(line)
		if user == "" {
			user = def
		}
		if user == "" {
			return "", "", cliError{errors.New("Error: Non-null Username Required")}
		}
	}
	fmt.Fprint(a.stdout, "Password: ")
	restore, err := term.MakeRaw(in)
	if err != nil {
		return "", "", err
	}
	var pw []byte
	for {
		b, err := r.ReadByte()
		if err != nil || b == '\r' || b == '\n' {
			break
		}
		if b == 3 { // ^C
			restore()
			return "", "", context.Canceled
		}
		pw = append(pw, b)
	}
	restore()
	fmt.Fprintln(a.stdout)
	if len(pw) == 0 {
		return "", "", cliError{errors.New("Error: Password Required")}
	}
	return user, string(pw), nil
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := ""
			if len(args) == 1 {
				server = args[0]
			}
			res, err := engine.Logout(cmd.Context(), server, "")
			if !res.Removed && err == nil {
				fmt.Fprintf(a.stdout, "Not logged in to %s\n", res.Server)
				return nil
			}
			fmt.Fprintf(a.stdout, "Removing login credentials for %s\n", res.Server)
			return err
		},
	}
}

// searchRow is one row of `search`, with docker's template field names.
type searchRow struct {
	Name        string `json:"Name"`
	Description string `json:"Description"`
	StarCount   string `json:"StarCount"`
	IsOfficial  string `json:"IsOfficial"`
	IsAutomated string `json:"IsAutomated"`
}

var searchHeaders = map[string]string{"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"}

func (a *app) searchCommand() *cobra.Command {
	var limit int
	var format string
	var noTrunc bool
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:   "search [OPTIONS] TERM",
		Short: "Search Docker Hub for images",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := engine.ImageSearch(cmd.Context(), a.cfg, engine.ImageSearchRequest{Term: args[0], Limit: limit, Filters: flt.Args})
			if err != nil {
				return err
			}
			rows := make([]searchRow, 0, len(res))
			for _, r := range res {
				desc := strings.ReplaceAll(r.Description, "\n", " ")
				if !noTrunc {
					desc = ellipsis(desc, 45)
				}
				row := searchRow{Name: r.Name, Description: desc, StarCount: strconv.Itoa(r.StarCount)}
				if r.IsOfficial {
					row.IsOfficial = "[OK]"
				}
				if r.IsAutomated {
					row.IsAutomated = "[OK]"
				}
				rows = append(rows, row)
			}
			if format == "" || format == "table" {
				format = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
			}
			return renderRows(a.stdout, format, rows, searchHeaders)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&limit, "limit", 0, "Max number of search results")
	fl.VarP(flt, "filter", "f", "Filter output based on conditions provided")
	fl.StringVar(&format, "format", "", "Pretty-print search using a Go template")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Don't truncate output")
	return cmd
}
