package cli

import (
	"bytes"
	"testing"

	"github.com/berth-dev/berth/internal/engine"
)

// TestProgressView: off a terminal docker's CLI prints each status line
// once and no progress bars; on one it rewrites each layer's line in
// place.
func TestProgressView(t *testing.T) {
	msgs := []engine.JSONMessage{
		{Status: "Pulling from team/app", ID: "1"},
		{Status: "Pulling fs layer", ID: "aaa", ProgressDetail: &engine.ProgressDetail{}},
		{Status: "Pulling fs layer", ID: "bbb", ProgressDetail: &engine.ProgressDetail{}},
		{Status: "Downloading", ID: "aaa", ProgressDetail: &engine.ProgressDetail{Current: 500, Total: 1000}},
		{Status: "Pull complete", ID: "aaa", ProgressDetail: &engine.ProgressDetail{}},
		{Status: "Digest: sha256:abc"},
	}
	var plain bytes.Buffer
	pv := &progressView{out: &plain, ids: map[string]int{}}
	for _, m := range msgs {
		pv.show(m)
	}
	want := "1: Pulling from team/app\naaa: Pulling fs layer\nbbb: Pulling fs layer\naaa: Pull complete\nDigest: sha256:abc\n"
	if plain.String() != want {
		t.Errorf("plain:\n%q\nwant\n%q", plain.String(), want)
	}
	var tty bytes.Buffer
	pv = &progressView{out: &tty, tty: true, width: 120, ids: map[string]int{}}
	for _, m := range msgs {
		pv.show(m)
	}
	want = "1: Pulling from team/app\n" +
		"\n\x1b[1A\x1b[2K\raaa: Pulling fs layer \r\x1b[1B" +
		"\n\x1b[1A\x1b[2K\rbbb: Pulling fs layer \r\x1b[1B" +
		"\x1b[2A\x1b[2K\raaa: Downloading [=========================>                         ]     500B/1kB\r\x1b[2B" +
		"\x1b[2A\x1b[2K\raaa: Pull complete \r\x1b[2B" +
		"Digest: sha256:abc\n"
	if tty.String() != want {
		t.Errorf("tty:\n%q\nwant\n%q", tty.String(), want)
	}
}
