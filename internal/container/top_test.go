package container

import (
	"context"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

func TestParsePs(t *testing.T) {
	const psEf = `UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 09:01 ?        00:00:06 /sbin/init splash
root        4242    4200  0 09:20 ?        00:00:00 sleep 1000
root        4243    4242  0 09:20 pts/0    00:00:00 sh -c echo  a   b
root        5000       1  0 09:21 ?        00:00:00 unrelated
`
	const psAux = `USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
root        4242  0.0  0.0   1320     4 ?        Ss   09:20   0:00 sleep 1000
root        5000  0.0  0.0   1320     4 ?        S    09:21   0:00 other
`
	tests := []struct {
		name    string
		out     string
		pids    []int
		titles  []string
		procs   [][]string
		wantErr bool
	}{
		{
			name:   "ps -ef",
			out:    psEf,
			pids:   []int{4242, 4243},
			titles: []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"},
			procs: [][]string{
				{"root", "4242", "4200", "0", "09:20", "?", "00:00:00", "sleep 1000"},
				{"root", "4243", "4242", "0", "09:20", "pts/0", "00:00:00", "sh -c echo a b"},
			},
		},
		{
			name:   "ps aux",
			out:    psAux,
			pids:   []int{4242},
			titles: []string{"USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"},
			procs:  [][]string{{"root", "4242", "0.0", "0.0", "1320", "4", "?", "Ss", "09:20", "0:00", "sleep 1000"}},
		},
		{
			name:   "PID as last column",
			out:    "COMMAND PID\nsleep 4242\nsh 1\n",
			pids:   []int{4242},
			titles: []string{"COMMAND", "PID"},
			procs:  [][]string{{"sleep", "4242"}},
		},
		{
			name:   "no process of the container",
			out:    psEf,
			pids:   []int{77},
			titles: []string{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"},
			procs:  [][]string{},
		},
		{
			name:   "empty trailing column",
			out:    "PID TTY CMD\n4242 ?\n",
			pids:   []int{4242},
			titles: []string{"PID", "TTY", "CMD"},
			procs:  [][]string{{"4242", "?", ""}},
		},
		{name: "no PID column", out: "UID CMD\nroot sleep\n", pids: []int{1}, wantErr: true},
		{name: "non-numeric pid", out: "PID CMD\nabc sleep\n", pids: []int{1}, wantErr: true},
		{name: "empty output", out: "", pids: []int{1}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			titles, procs, err := parsePs([]byte(tc.out), tc.pids)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsePs succeeded: %v %v", titles, procs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(titles, tc.titles) {
				t.Errorf("titles = %q, want %q", titles, tc.titles)
			}
			if !reflect.DeepEqual(procs, tc.procs) {
				t.Errorf("procs = %q, want %q", procs, tc.procs)
			}
		})
	}
}

// TestRunPs runs the host's ps for this test's own process, with options
// that combine with procps' -q and with a forest listing that does not.
func TestRunPs(t *testing.T) {
	testutil.RequiresBinary(t, "ps")
	self := os.Getpid()
	for _, args := range [][]string{{"-ef"}, {"-o", "pid,comm"}, {"axf"}} {
		out, err := runPs(context.Background(), args, []int{self})
		if err != nil {
			t.Fatalf("ps %v: %v", args, err)
		}
		_, procs, err := parsePs(out, []int{self})
		if err != nil {
			t.Fatalf("ps %v: %v", args, err)
		}
		found := false
		for _, p := range procs {
			for _, v := range p {
				if v == strconv.Itoa(self) {
					found = true
				}
			}
		}
		if len(procs) != 1 || !found {
			t.Errorf("ps %v: rows %q, want the one of pid %d", args, procs, self)
		}
	}
	if _, err := runPs(context.Background(), []string{"--no-such-option"}, []int{self}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ps with a bad option: %v, want an invalid-argument error", err)
	}
}
