package container

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestExecRelay drives the relay with a host shell standing in for the
// runtime's helper: stdin is copied until EOF, both outputs arrive, the
// exit status is the process's, and a background process that keeps the
// output pipes open does not hold Wait beyond drainIdle.
func TestExecRelay(t *testing.T) {
	var stdout, stderr bytes.Buffer
	p, rio, err := newExecRelay(ExecStreams{Stdin: strings.NewReader("in-data"), Stdout: &stdout, Stderr: &stderr}, false)
	if err != nil {
		t.Fatal(err)
	}
	if rio.Stdin == nil || rio.Stdout == nil || rio.Stderr == nil {
		t.Fatalf("want a pipe for each stream, got %+v", rio)
	}
	cmd := exec.Command("/bin/sh", "-c", "cat; echo; echo err >&2; sleep 3 & exit 3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = rio.Stdin, rio.Stdout, rio.Stderr
	err = cmd.Start()
	p.started(cmd, err == nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, err := p.Wait()
	if err != nil || code != 3 {
		t.Fatalf("Wait: %d, %v", code, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Wait took %s: it waited for the background process", took)
	}
	if stdout.String() != "in-data\n" || stderr.String() != "err\n" {
		t.Fatalf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// TestExecRelayNoStreams: nil streams give the process /dev/null (nil
// files for the runtime), and a failed start closes every pipe.
func TestExecRelayNoStreams(t *testing.T) {
	p, rio, err := newExecRelay(ExecStreams{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if rio.Stdin != nil || rio.Stdout != nil || rio.Stderr != nil {
		t.Fatalf("want no pipes, got %+v", rio)
	}
	p.started(nil, false)

	var out bytes.Buffer
	p, rio, err = newExecRelay(ExecStreams{Stdout: &out}, false)
	if err != nil {
		t.Fatal(err)
	}
	p.started(nil, false)
	if _, err := rio.Stdout.Write([]byte("x")); err == nil {
		t.Fatal("the process's end is still open after a failed start")
	}
}
