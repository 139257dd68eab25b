package runtime

import (
	"errors"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestRuntimeMessage(t *testing.T) {
	tests := []struct {
		name, out, want string
	}{
		{name: "json error", out: `{"level":"error","msg":"container does not exist","time":"2026-01-01T00:00:00Z"}` + "\n", want: "container does not exist"},
		{name: "last error wins over warnings", out: `{"level":"error","msg":"first"}` + "\n" + `{"level":"warning","msg":"w"}` + "\n" + `{"level":"error","msg":"second"}`, want: "second"},
		{name: "plain text", out: "some panic\ngoroutine 1\n", want: "goroutine 1"},
		{name: "json without error falls back to text", out: `{"level":"debug","msg":"d"}` + "\nplain\n", want: "plain"},
		{name: "empty", out: "", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := runtimeMessage([]byte(tc.out)); got != tc.want {
				t.Errorf("runtimeMessage = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name, op, msg string
		code          int    // ExitStatus code, 0 for none
		exitMsg       string // its message
		class         error  // errdefs class, nil for unclassified
	}{
		{
			name: "not in PATH", op: "create",
			msg:  `runc create failed: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH`,
			code: 127, exitMsg: `exec: "nosuchcmd": executable file not found in $PATH`,
		},
		{
			name: "absent path", op: "create",
			msg:  `runc create failed: unable to start container process: exec: "/no/such": stat /no/such: no such file or directory`,
			code: 127, exitMsg: `exec: "/no/such": stat /no/such: no such file or directory`,
		},
		{
			name: "not executable", op: "create",
			msg:  `runc create failed: unable to start container process: exec: "/etc/passwd": permission denied`,
			code: 126, exitMsg: `exec: "/etc/passwd": permission denied`,
		},
		{
			name: "exec format error", op: "create",
			msg:  `unable to start container process: exec: "/bin/x": exec format error`,
			code: 126, exitMsg: `exec: "/bin/x": exec format error`,
		},
		{
			name: "exec not in PATH", op: "exec",
			msg:  `exec failed: unable to start container process: exec: "nosuchcmd": executable file not found in $PATH`,
			code: 127, exitMsg: `exec: "nosuchcmd": executable file not found in $PATH`,
		},
		{
			name: "crun wording", op: "create",
			msg:  "executable file `nosuchcmd` not found in $PATH: No such file or directory",
			code: 127, exitMsg: "executable file `nosuchcmd` not found in $PATH: No such file or directory",
		},
		{
			name: "missing mount source is not 127", op: "create",
			msg:   `runc create failed: unable to start container process: error during container init: error mounting "/nope" to rootfs at "/data": stat /nope: no such file or directory`,
			class: nil,
		},
		{name: "start of unknown", op: "start", msg: "container does not exist", class: errdefs.ErrNotFound},
		{name: "kill of stopped", op: "kill", msg: "container not running", class: errdefs.ErrConflict},
		{name: "delete running", op: "delete", msg: "cannot delete container c that is not stopped: running", class: errdefs.ErrConflict},
		{name: "create twice", op: "create", msg: "container with id exists: c", class: errdefs.ErrConflict},
		{name: "id in use", op: "create", msg: "container c already exists", class: errdefs.ErrConflict},
		{name: "resume running", op: "resume", msg: "container not paused", class: errdefs.ErrConflict},
		{name: "not found in exec is not 127", op: "start", msg: `exec: "x": executable file not found in $PATH`, class: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify("runc", tc.op, "c", tc.msg)
			var st *errdefs.ExitStatus
			if tc.code != 0 {
				if !errors.As(err, &st) || st.Code != tc.code || st.Msg != tc.exitMsg {
					t.Fatalf("classify = %#v, want exit %d %q", err, tc.code, tc.exitMsg)
				}
				return
			}
			if errors.As(err, &st) {
				t.Fatalf("classify = exit status %d, want none", st.Code)
			}
			for _, class := range []error{errdefs.ErrNotFound, errdefs.ErrConflict, errdefs.ErrInvalidArgument} {
				if errors.Is(err, class) != (class == tc.class) {
					t.Errorf("classify(%q) = %v; is %v: %v", tc.msg, err, class, errors.Is(err, class))
				}
			}
		})
	}
}
