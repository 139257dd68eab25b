package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/errdefs"
)

// TestExitCode is the table of the edge's one mapping from a failure to
// docker's exit code and words, measured against docker CLI 28.2 with
// Engine 20.10.
func TestExitCode(t *testing.T) {
	notFound := errdefs.NotFound("No such container: x")
	tests := []struct {
		name, path string
		err        error
		code       int
		text       string // what stderr starts with
	}{
		{"rm of an unknown container", "berth rm", notFound, 1, "Error response from daemon: No such container: x\n"},
		{"conflict outside run", "berth rename", errdefs.Conflict("name in use"), 1, "Error response from daemon: name in use"},
		{"invalid argument outside run", "berth kill", errdefs.InvalidArgument("invalid signal: BOGUS"), 1, "Error response from daemon: invalid signal"},
		{"unclassed engine error", "berth image rm", errors.New("boom"), 1, "Error response from daemon: boom"},
		{"create engine failure", "berth create", errdefs.InvalidArgument("Minimum memory limit allowed is 6MB"), 1, "Error response from daemon: Minimum memory"},
		{"container create engine failure", "berth container create", notFound, 1, "Error response from daemon: No such container"},
		{"volume create is not create", "berth volume create", errdefs.Conflict("x"), 1, "Error response from daemon: x"},
		{"run engine failure", "berth run", errdefs.InvalidArgument(`invalid CapAdd: unknown capability: "CAP_BOGUS"`), 125,
			"berth: Error response from daemon: invalid CapAdd: unknown capability: \"CAP_BOGUS\"\n\nRun 'berth run --help' for more information\n"},
		{"container run engine failure", "berth container run", notFound, 125, "berth: Error response from daemon: No such container"},
		{"run missing image", "berth run", errdefs.NotFound("pull access denied for x"), 125, "berth: Error response from daemon: pull access denied"},
		{"run flag parse", "berth run", parseError{errors.New("conflicting options: cannot specify both --restart and --rm")}, 125,
			"berth: conflicting options: cannot specify both --restart and --rm\n\nRun 'berth run --help' for more information\n"},
		{"create flag parse", "berth create", parseError{errors.New("conflicting options")}, 125, "berth: conflicting options\n\nRun 'berth create --help'"},
		{"unknown flag", "berth ps", usageError{errors.New("unknown flag: --bogus")}, 125, "unknown flag: --bogus\n\nUsage:  berth ps"},
		{"cobra flag error", "berth rm", errors.New("unknown shorthand flag: 'z' in -z"), 125, "unknown shorthand flag"},
		{"run unknown flag", "berth run", usageError{errors.New("unknown flag: --bogus")}, 125, "unknown flag: --bogus"},
		{"too few arguments", "berth rm", argsError{errors.New("'berth rm' requires at least 1 argument")}, 1,
			"berth: 'berth rm' requires at least 1 argument\n\nUsage:  berth rm"},
		{"run without image", "berth run", argsError{errors.New("'berth run' requires at least 1 argument")}, 1, "berth: 'berth run' requires"},
		{"unknown command", "berth", unknownCommandError{"foo"}, 1, "berth: unknown command: berth foo\n\nRun 'berth --help' for more information\n"},
		{"unknown subcommand", "berth container", unknownCommandError{"foo"}, 1, "berth: unknown command: berth container foo"},
		{"inspect template", "berth inspect", &templateError{msg: "template parsing error: template: :1: unclosed action", code: 64}, 64, "template parsing error: template: :1: unclosed action\n"},
		{"ps template", "berth ps", &templateError{msg: "template parsing error: x", code: 1}, 1, "template parsing error: x"},
		{"container exit status", "berth run", &errdefs.ExitStatus{Code: 3}, 3, ""},
		{"run command not found", "berth run", &errdefs.ExitStatus{Code: 127, Msg: `exec: "x": executable file not found in $PATH`}, 127,
			"berth: Error response from daemon: exec: \"x\": executable file not found in $PATH\n\nRun 'berth run --help'"},
		{"exec cannot invoke", "berth exec", &errdefs.ExitStatus{Code: 126, Msg: `exec: "/etc": permission denied`}, 126, "berth: exec: \"/etc\": permission denied\n"},
		{"exec on a stopped container", "berth exec", errdefs.Conflict("Container x is not running"), 1, "Error response from daemon: Container x is not running"},
		{"cli's own failure", "berth attach", cliError{errors.New("You cannot attach to a stopped container, start it first")}, 1, "You cannot attach to a stopped container, start it first\n"},
		{"cli's own failure in run", "berth run", cliError{errors.New("the input device is not a TTY")}, 1, "the input device is not a TTY\n"},
		{"wrapped not found", "berth start", fmt.Errorf("start: %w", notFound), 1, "Error response from daemon: start: No such container"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := commandAt(tc.path)
			if got := exitCode(cmd.CommandPath(), tc.err); got != tc.code {
				t.Errorf("exit code %d, want %d", got, tc.code)
			}
			if got := errorText(cmd, tc.err); !strings.HasPrefix(got, tc.text) || tc.text == "" && got != "" {
				t.Errorf("stderr %q, want it to start with %q", got, tc.text)
			}
		})
	}
}

// commandAt builds the command tree down to path ("berth container run").
func commandAt(path string) *cobra.Command {
	words := strings.Fields(path)
	cmd := &cobra.Command{Use: words[0]}
	for _, w := range words[1:] {
		sub := &cobra.Command{Use: w + " [OPTIONS]", Run: func(*cobra.Command, []string) {}}
		cmd.AddCommand(sub)
		cmd = sub
	}
	return cmd
}
