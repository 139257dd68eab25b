package cli

import (
	"bytes"
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{500 * time.Millisecond, "Less than a second"},
		{time.Second, "1 second"},
		{45 * time.Second, "45 seconds"},
		{90 * time.Second, "About a minute"},
		{10 * time.Minute, "10 minutes"},
		{70 * time.Minute, "About an hour"},
		{5 * time.Hour, "5 hours"},
		{72 * time.Hour, "3 days"},
		{21 * 24 * time.Hour, "3 weeks"},
		{90 * 24 * time.Hour, "3 months"},
		{3 * 365 * 24 * time.Hour, "3 years"},
	}
	for _, tc := range tests {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0B"}, {999, "999B"}, {1000, "1kB"}, {1980000, "1.98MB"}, {4260000, "4.26MB"}, {123456789, "123MB"}, {1e9, "1GB"},
	}
	for _, tc := range tests {
		if got := humanSize(tc.n); got != tc.want {
			t.Errorf("humanSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestRenderRows(t *testing.T) {
	type row struct{ ID, Name string }
	rows := []row{{"abc", "web"}, {"def", "db"}}
	tests := []struct {
		name, format, want string
	}{
		{"table", "table {{.ID}}\t{{.Name}}", "ID        NAME\nabc       web\ndef       db\n"},
		{"plain template", "{{.Name}}={{.ID}}", "web=abc\ndb=def\n"},
		{"json", "json", "{\"ID\":\"abc\",\"Name\":\"web\"}\n{\"ID\":\"def\",\"Name\":\"db\"}\n"},
		{"functions", "{{upper .Name}} {{truncate .ID 2}}", "WEB a…\nDB d…\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := renderRows(&buf, tc.format, rows, map[string]string{"ID": "ID", "Name": "NAME"}); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tc.want {
				t.Fatalf("got %q, want %q", buf.String(), tc.want)
			}
		})
	}
	if err := renderRows(&bytes.Buffer{}, "{{.Nope", rows, nil); err == nil {
		t.Fatal("a broken template was accepted")
	}
}

func TestParseRestartPolicy(t *testing.T) {
	tests := []struct {
		in      string
		name    string
		count   int
		wantErr bool
	}{
		{"no", "no", 0, false},
		{"", "no", 0, false},
		{"always", "always", 0, false},
		{"unless-stopped", "unless-stopped", 0, false},
		{"on-failure", "on-failure", 0, false},
		{"on-failure:3", "on-failure", 3, false},
		{"on-failure:x", "", 0, true},
		{"always:2", "", 0, true},
		{"sometimes", "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			rp, err := parseRestartPolicy(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !tc.wantErr && (rp.Name != tc.name || rp.MaximumRetryCount != tc.count) {
				t.Fatalf("got %+v", rp)
			}
		})
	}
}

func TestParseUlimit(t *testing.T) {
	tests := []struct {
		in         string
		soft, hard int64
		wantErr    bool
	}{
		{"nofile=1024", 1024, 1024, false},
		{"nofile=1024:2048", 1024, 2048, false},
		{"nproc=-1", -1, -1, false},
		{"nofile=5:2", 0, 0, true},
		{"bogus=1", 0, 0, true},
		{"nofile", 0, 0, true},
		{"nofile=x", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			u, err := parseUlimit(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !tc.wantErr && (u.Soft != tc.soft || u.Hard != tc.hard) {
				t.Fatalf("got %+v", u)
			}
		})
	}
}

func TestSplitCpArg(t *testing.T) {
	tests := []struct{ in, ctr, path string }{
		{"web:/etc/hosts", "web", "/etc/hosts"},
		{"/local/path", "", "/local/path"},
		{"./rel:with:colons", "", "./rel:with:colons"},
		{"file.txt", "", "file.txt"},
		{"-", "", "-"},
	}
	for _, tc := range tests {
		ctr, path := splitCpArg(tc.in)
		if ctr != tc.ctr || path != tc.path {
			t.Errorf("splitCpArg(%q) = %q, %q", tc.in, ctr, path)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"10m", now.Add(-10 * time.Minute)},
		{"2026-11-23T09:00:00Z", time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
		{"1790000000", time.Unix(1790000000, 0)},
		{"1790000000.5", time.Unix(1790000000, 5e8)},
	}
	for _, tc := range tests {
		got, err := parseTimestamp(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := parseTimestamp("yesterday", now); err == nil {
		t.Error("accepted \"yesterday\"")
	}
}
