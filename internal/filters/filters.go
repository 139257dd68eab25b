// Package filters implements Docker's filter semantics once, for every
// front end and use case (ps, images, volume ls, events, prune): the
// `--filter key=value` flag, the JSON the API carries, validation of the
// keys a use case accepts, and the matching rules. Values of one key are
// ORed (any may match); different keys are ANDed. Label filters are the
// exception, as in Docker: every `label=` value must hold.
package filters

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Args is a set of filters: key -> set of values.
type Args struct {
	fields map[string]map[string]bool
}

// NewArgs returns empty filters.
func NewArgs() Args { return Args{fields: map[string]map[string]bool{}} }

// Add adds one value of key.
func (a *Args) Add(key, value string) {
	if a.fields == nil {
		a.fields = map[string]map[string]bool{}
	}
	if a.fields[key] == nil {
		a.fields[key] = map[string]bool{}
	}
	a.fields[key][value] = true
}

// Del removes one value of key (and key once it has none).
func (a *Args) Del(key, value string) {
	if vals, ok := a.fields[key]; ok {
		delete(vals, value)
		if len(vals) == 0 {
			delete(a.fields, key)
		}
	}
}

// Len is the number of keys.
func (a Args) Len() int { return len(a.fields) }

// Keys lists the keys, sorted.
func (a Args) Keys() []string {
	keys := make([]string, 0, len(a.fields))
	for k := range a.fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Contains reports whether key was given.
func (a Args) Contains(key string) bool {
	_, ok := a.fields[key]
	return ok
}

// Get lists the values of key, sorted.
func (a Args) Get(key string) []string {
	vals := make([]string, 0, len(a.fields[key]))
	for v := range a.fields[key] {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	return vals
}

// Clone copies a so that the copy may be changed alone.
func (a Args) Clone() Args {
	c := NewArgs()
	for k, vals := range a.fields {
		for v := range vals {
			c.Add(k, v)
		}
	}
	return c
}

// ErrBadFormat is the error of a --filter value without "=".
var ErrBadFormat = errdefs.InvalidArgument("bad format of filter (expected name=value)")

// ParseFlag adds one `--filter` value ("key=value") to a, as the docker
// CLI reads it: the key is trimmed and lowercased, the value trimmed.
// "label!=x" is the key "label!" with the value "x".
func (a *Args) ParseFlag(arg string) error {
	if arg == "" {
		return nil
	}
	k, v, ok := strings.Cut(arg, "=")
	if !ok {
		return ErrBadFormat
	}
	a.Add(strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v))
	return nil
}

// Parse reads repeated `--filter` values.
func Parse(flags []string) (Args, error) {
	a := NewArgs()
	for _, f := range flags {
		if err := a.ParseFlag(f); err != nil {
			return a, fmt.Errorf("%w: %s", err, f)
		}
	}
	return a, nil
}

// ToJSON encodes a as the API's query parameter: {"key":{"value":true}}.
// Empty filters encode as "".
func (a Args) ToJSON() (string, error) {
	if a.Len() == 0 {
		return "", nil
	}
	raw, err := json.Marshal(a.fields)
	return string(raw), err
}

// FromJSON decodes the API's filters parameter in either of its forms:
// {"key":{"value":true}} and the legacy {"key":["value"]}.
func FromJSON(s string) (Args, error) {
	a := NewArgs()
	if s == "" {
		return a, nil
	}
	var m map[string]map[string]bool
	if err := json.Unmarshal([]byte(s), &m); err == nil {
		for k, vals := range m {
			a.fields[k] = map[string]bool{}
			for v, on := range vals {
				if on {
					a.fields[k][v] = true
				}
			}
		}
		return a, nil
	}
	var legacy map[string][]string
	if err := json.Unmarshal([]byte(s), &legacy); err != nil {
		return a, errdefs.InvalidArgument("invalid filters %q: %v", s, err)
	}
	for k, vals := range legacy {
		a.fields[k] = map[string]bool{}
		for _, v := range vals {
			a.fields[k][v] = true
		}
	}
	return a, nil
}

// InvalidFilter is Docker's "invalid filter 'key'" or "invalid filter
// 'key=value'" error, an invalid-argument class error.
func InvalidFilter(key string, values ...string) error {
	if len(values) == 0 {
		return errdefs.InvalidArgument("invalid filter '%s'", key)
	}
	return errdefs.InvalidArgument("invalid filter '%s=%s'", key, strings.Join(values, ","))
}

// Validate refuses any key not in allowed.
func (a Args) Validate(allowed ...string) error {
	for _, k := range a.Keys() {
		ok := false
		for _, al := range allowed {
			ok = ok || k == al
		}
		if !ok {
			return InvalidFilter(k)
		}
	}
	return nil
}

// ExactMatch reports whether source is one of key's values; a key not
// given matches everything.
func (a Args) ExactMatch(key, source string) bool {
	vals := a.fields[key]
	if len(vals) == 0 {
		return true
	}
	return vals[source]
}

// UniqueExactMatch is ExactMatch for a key that takes one value only.
func (a Args) UniqueExactMatch(key, source string) bool {
	vals := a.fields[key]
	if len(vals) == 0 {
		return true
	}
	return len(vals) == 1 && vals[source]
}

// FuzzyMatch reports whether source equals or starts with one of key's
// values (ids and names abbreviated by the user).
func (a Args) FuzzyMatch(key, source string) bool {
	if a.ExactMatch(key, source) {
		return true
	}
	for v := range a.fields[key] {
		if strings.HasPrefix(source, v) {
			return true
		}
	}
	return false
}

// Match reports whether source equals one of key's values or matches it
// as a regular expression (unanchored, as Docker's name filter); a value
// that is not a valid expression only matches exactly.
func (a Args) Match(key, source string) bool {
	if a.ExactMatch(key, source) {
		return true
	}
	for v := range a.fields[key] {
		if re, err := regexp.Compile(v); err == nil && re.MatchString(source) {
			return true
		}
	}
	return false
}

// MatchKVList matches "k" and "k=v" values of key (a label filter)
// against labels: every value must hold.
func (a Args) MatchKVList(key string, labels map[string]string) bool {
	vals := a.fields[key]
	if len(vals) == 0 {
		return true
	}
	if len(labels) == 0 {
		return false
	}
	for v := range vals {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != want {
			return false
		}
	}
	return true
}

// MatchLabels applies the `label` and `label!` filters as prune does:
// every `label` value must hold, and an object for which every `label!`
// value holds is left out.
func (a Args) MatchLabels(labels map[string]string) bool {
	if !a.MatchKVList("label", labels) {
		return false
	}
	if a.Contains("label!") && a.MatchKVList("label!", labels) {
		return false
	}
	return true
}

// GetBoolOrDefault reads a boolean key ("true"/"1" or "false"/"0");
// conflicting or other values are an invalid filter.
func (a Args) GetBoolOrDefault(key string, def bool) (bool, error) {
	vals, ok := a.fields[key]
	if !ok {
		return def, nil
	}
	isTrue := vals["true"] || vals["1"]
	isFalse := vals["false"] || vals["0"]
	if isTrue == isFalse || len(vals) == 0 {
		return def, InvalidFilter(key, a.Get(key)...)
	}
	return isTrue, nil
}

// WalkValues calls fn for each value of key, sorted, stopping at an error.
func (a Args) WalkValues(key string, fn func(string) error) error {
	for _, v := range a.Get(key) {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// Flag is a pflag.Value for repeated `--filter` options.
type Flag struct{ Args Args }

// NewFlag returns an empty filter flag.
func NewFlag() *Flag { return &Flag{Args: NewArgs()} }

// Set adds one "key=value".
func (f *Flag) Set(s string) error { return f.Args.ParseFlag(s) }

// Type names the flag's value in help text.
func (f *Flag) Type() string { return "filter" }

// String shows the filters given.
func (f *Flag) String() string {
	var out []string
	for _, k := range f.Args.Keys() {
		for _, v := range f.Args.Get(k) {
			out = append(out, k+"="+v)
		}
	}
	return "[" + strings.Join(out, ",") + "]"
}
