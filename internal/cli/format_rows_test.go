package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Rows as JSON carry docker's keys, sorted (docker marshals a map).
func TestRowJSONKeysSorted(t *testing.T) {
	tests := []struct {
		name string
		row  any
		want string
	}{
		{"ps", psRow{ID: "abc", Names: "web", LocalVolumes: "1", Size: "0B (virtual 1MB)"},
			`{"Command":"","CreatedAt":"","ID":"abc","Image":"","Labels":"","LocalVolumes":"1","Mounts":"","Names":"web","Networks":"","Platform":null,"Ports":"","RunningFor":"","Size":"0B (virtual 1MB)","State":"","Status":""}`},
		{"images", imageRow{ID: "abc", Digest: "<none>"},
			`{"Containers":"","CreatedAt":"","CreatedSince":"","Digest":"\u003cnone\u003e","ID":"abc","Repository":"","SharedSize":"","Size":"","Tag":"","UniqueSize":"","VirtualSize":""}`},
		{"volume ls", volumeRow{Name: "v", Driver: "local", Availability: "N/A", Group: "N/A", Status: "N/A"},
			`{"Availability":"N/A","Driver":"local","Group":"N/A","Labels":"","Links":"","Mountpoint":"","Name":"v","Scope":"","Size":"","Status":"N/A"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, format := range []string{"json", "{{json .}}"} {
				var buf bytes.Buffer
				switch r := tc.row.(type) {
				case psRow:
					if err := renderRows(&buf, format, []psRow{r}, nil); err != nil {
						t.Fatal(err)
					}
				case imageRow:
					if err := renderRows(&buf, format, []imageRow{r}, nil); err != nil {
						t.Fatal(err)
					}
				case volumeRow:
					if err := renderRows(&buf, format, []volumeRow{r}, nil); err != nil {
						t.Fatal(err)
					}
				}
				if got := strings.TrimSpace(buf.String()); got != tc.want {
					t.Errorf("%s:\n got %s\nwant %s", format, got, tc.want)
				}
			}
		})
	}
}

// ps tries its template on an empty row, so a bad field fails without rows
// (exit 1, docker's message).
func TestCheckRowTemplate(t *testing.T) {
	tests := []struct {
		format string
		ok     bool
	}{
		{"{{.ID}} {{.Names}}", true},
		{"table {{.ID}}\t{{.Size}}", true},
		{"table", true},
		{"json", true},
		{"{{json .}}", true},
		{`{{.Label "a"}}`, true},
		{"{{.NoSuchField}}", false},
		{"table {{.ID}} {{.NoSuchField}}", false},
	}
	for _, tc := range tests {
		err := checkRowTemplate[psRow](tc.format)
		if (err == nil) != tc.ok {
			t.Errorf("checkRowTemplate(%q) = %v, want ok=%v", tc.format, err, tc.ok)
			continue
		}
		var te *templateError
		if err != nil && (!errors.As(err, &te) || te.code != 1 ||
			!strings.HasPrefix(te.msg, "failed to execute template: ") || !strings.Contains(te.msg, "can't evaluate field NoSuchField")) {
			t.Errorf("checkRowTemplate(%q) = %#v, want docker's message and exit 1", tc.format, err)
		}
	}
}

// ps computes sizes when its format shows them, as docker's.
func TestFormatUsesField(t *testing.T) {
	tests := []struct {
		format string
		want   bool
	}{
		{"{{.Size}}", true},
		{"table {{.ID}}\t{{.Size}}", true},
		{"{{json .}}", true},
		{"{{ json . }}", true},
		{"json", true},
		{"{{.ID}}", false},
		{"{{json .Names}}", false},
	}
	for _, tc := range tests {
		if got := formatUsesField(tc.format, "Size"); got != tc.want {
			t.Errorf("formatUsesField(%q) = %v, want %v", tc.format, got, tc.want)
		}
	}
}
