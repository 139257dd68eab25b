package filters

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

func mustParse(t *testing.T, flags ...string) Args {
	t.Helper()
	a, err := Parse(flags)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseFlag(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
		want  map[string][]string
		err   string
	}{
		{name: "one", flags: []string{"label=a=b"}, want: map[string][]string{"label": {"a=b"}}},
		{name: "repeated key", flags: []string{"name=x", "name=y"}, want: map[string][]string{"name": {"x", "y"}}},
		{name: "not-equal label", flags: []string{"label!=k=v"}, want: map[string][]string{"label!": {"k=v"}}},
		{name: "key case and spaces", flags: []string{" Dangling = true "}, want: map[string][]string{"dangling": {"true"}}},
		{name: "empty value", flags: []string{"label="}, want: map[string][]string{"label": {""}}},
		{name: "no equals", flags: []string{"dangling"}, err: "bad format of filter (expected name=value): dangling"},
		{name: "empty ignored", flags: []string{""}, want: map[string][]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.flags)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want %q (invalid argument)", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Len() != len(tc.want) {
				t.Fatalf("keys %v, want %v", a.Keys(), tc.want)
			}
			for k, vals := range tc.want {
				if got := a.Get(k); strings.Join(got, "|") != strings.Join(vals, "|") {
					t.Errorf("%s = %q, want %q", k, got, vals)
				}
			}
		})
	}
}

func TestJSON(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string][]string
		err      bool
	}{
		{name: "empty", in: "", want: map[string][]string{}},
		{name: "map form", in: `{"label":{"a=1":true,"b":true},"dangling":{"true":true}}`, want: map[string][]string{"label": {"a=1", "b"}, "dangling": {"true"}}},
		{name: "map form false dropped", in: `{"name":{"x":false,"y":true}}`, want: map[string][]string{"name": {"y"}}},
		{name: "legacy list form", in: `{"label":["a=1"],"until":["10m"]}`, want: map[string][]string{"label": {"a=1"}, "until": {"10m"}}},
		{name: "garbage", in: `{"label":1}`, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := FromJSON(tc.in)
			if tc.err {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want invalid argument", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, vals := range tc.want {
				if got := a.Get(k); strings.Join(got, "|") != strings.Join(vals, "|") {
					t.Errorf("%s = %q, want %q", k, got, vals)
				}
			}
			// Round trip through the map form.
			s, err := a.ToJSON()
			if err != nil {
				t.Fatal(err)
			}
			b, err := FromJSON(s)
			if err != nil || b.Len() != a.Len() {
				t.Fatalf("round trip %q: %v, %v", s, b.Keys(), err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	a := mustParse(t, "label=x", "until=1h")
	if err := a.Validate("label", "label!", "until"); err != nil {
		t.Fatal(err)
	}
	err := a.Validate("label", "label!")
	if err == nil || err.Error() != "invalid filter 'until'" || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestMatch(t *testing.T) {
	labels := map[string]string{"a": "1", "b": ""}
	for _, tc := range []struct {
		name  string
		flags []string
		match func(Args) bool
		want  bool
	}{
		{"no filter matches all", nil, func(a Args) bool { return a.ExactMatch("name", "x") }, true},
		{"exact", []string{"status=running"}, func(a Args) bool { return a.ExactMatch("status", "running") }, true},
		{"exact miss", []string{"status=running"}, func(a Args) bool { return a.ExactMatch("status", "exited") }, false},
		{"OR within key", []string{"status=running", "status=exited"}, func(a Args) bool { return a.ExactMatch("status", "exited") }, true},
		{"fuzzy prefix", []string{"id=abc"}, func(a Args) bool { return a.FuzzyMatch("id", "abcdef") }, true},
		{"fuzzy not infix", []string{"id=bcd"}, func(a Args) bool { return a.FuzzyMatch("id", "abcdef") }, false},
		{"regexp unanchored", []string{"name=eb"}, func(a Args) bool { return a.Match("name", "web") }, true},
		{"regexp anchored", []string{"name=^w"}, func(a Args) bool { return a.Match("name", "web") }, true},
		{"regexp anchored miss", []string{"name=^e"}, func(a Args) bool { return a.Match("name", "web") }, false},
		{"bad regexp exact only", []string{"name=w("}, func(a Args) bool { return a.Match("name", "w(") }, true},
		{"label key", []string{"label=a"}, func(a Args) bool { return a.MatchKVList("label", labels) }, true},
		{"label key=value", []string{"label=a=1"}, func(a Args) bool { return a.MatchKVList("label", labels) }, true},
		{"label wrong value", []string{"label=a=2"}, func(a Args) bool { return a.MatchKVList("label", labels) }, false},
		{"label empty value", []string{"label=b="}, func(a Args) bool { return a.MatchKVList("label", labels) }, true},
		{"labels ANDed", []string{"label=a", "label=c"}, func(a Args) bool { return a.MatchKVList("label", labels) }, false},
		{"label on no labels", []string{"label=a"}, func(a Args) bool { return a.MatchKVList("label", nil) }, false},
		{"label! excludes", []string{"label!=a=1"}, func(a Args) bool { return a.MatchLabels(labels) }, false},
		{"label! other value keeps", []string{"label!=a=2"}, func(a Args) bool { return a.MatchLabels(labels) }, true},
		{"label! absent keeps", []string{"label!=z"}, func(a Args) bool { return a.MatchLabels(labels) }, true},
		{"label and label!", []string{"label=a", "label!=b"}, func(a Args) bool { return a.MatchLabels(labels) }, false},
		{"unique exact two values", []string{"x=1", "x=2"}, func(a Args) bool { return a.UniqueExactMatch("x", "1") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.match(mustParse(t, tc.flags...)); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGetBool(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		def   bool
		want  bool
		err   string
	}{
		{nil, true, true, ""},
		{[]string{"dangling=true"}, false, true, ""},
		{[]string{"dangling=1"}, false, true, ""},
		{[]string{"dangling=false"}, true, false, ""},
		{[]string{"dangling=0"}, true, false, ""},
		{[]string{"dangling=yes"}, true, true, "invalid filter 'dangling=yes'"},
		{[]string{"dangling=true", "dangling=false"}, true, true, "invalid filter 'dangling=false,true'"},
	} {
		t.Run(strings.Join(tc.flags, ","), func(t *testing.T) {
			got, err := mustParse(t, tc.flags...).GetBoolOrDefault("dangling", tc.def)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	zone := time.FixedZone("X", 2*3600)
	now := time.Date(2026, 12, 7, 10, 30, 15, 500, zone)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "10m", want: now.Add(-10 * time.Minute)},
		{in: "1h30m", want: now.Add(-90 * time.Minute)},
		{in: "0s", want: now},
		{in: "-5m", want: now.Add(5 * time.Minute)},
		{in: "0", want: time.Unix(0, 0)},
		{in: "1700000000", want: time.Unix(1700000000, 0)},
		{in: "1700000000.5", want: time.Unix(1700000000, 500000000)},
		{in: "1700000000.000000001", want: time.Unix(1700000000, 1)},
		{in: "2026-12-01", want: time.Date(2026, 12, 1, 0, 0, 0, 0, zone)},
		{in: "2026-12-01T08", want: time.Date(2026, 12, 1, 8, 0, 0, 0, zone)},
		{in: "2026-12-01T08:05", want: time.Date(2026, 12, 1, 8, 5, 0, 0, zone)},
		{in: "2026-12-01T08:05:09", want: time.Date(2026, 12, 1, 8, 5, 9, 0, zone)},
		{in: "2026-12-01T08:05:09.25", want: time.Date(2026, 12, 1, 8, 5, 9, 250000000, zone)},
		{in: "2026-12-01T08:05:09Z", want: time.Date(2026, 12, 1, 8, 5, 9, 0, time.UTC)},
		{in: "2026-12-01T08:05Z", want: time.Date(2026, 12, 1, 8, 5, 0, 0, time.UTC)},
		{in: "2026-12-01T08:05:09+01:00", want: time.Date(2026, 12, 1, 7, 5, 9, 0, time.UTC)},
		{in: "2026-12-01T08:05:09-01:00", want: time.Date(2026, 12, 1, 9, 5, 9, 0, time.UTC)},
		{in: "2026-12-01T08:05:09.5Z", want: time.Date(2026, 12, 1, 8, 5, 9, 500000000, time.UTC)},
		{in: "2026-13-01", err: true},
		{in: "yesterday", err: true},
		{in: "12abc", err: true},
		{in: "", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTime(tc.in, now)
			if tc.err {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("got %v, %v; want an invalid argument", got, err)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestFlag(t *testing.T) {
	f := NewFlag()
	if err := f.Set("label=a"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("nope"); err == nil {
		t.Fatal("accepted a filter without =")
	}
	if f.String() != "[label=a]" || f.Type() != "filter" {
		t.Fatalf("%s %s", f.String(), f.Type())
	}
}
