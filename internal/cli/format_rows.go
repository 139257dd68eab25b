package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// sortedJSON marshals a list row as docker's CLI does: its formatter
// contexts marshal a map of their fields, so the keys come out sorted.
func sortedJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// The row types marshal through plain copies of themselves (no methods,
// so no recursion into MarshalJSON).
type (
	psRowFields     psRow
	imageRowFields  imageRow
	volumeRowFields volumeRow
)

func (r psRow) MarshalJSON() ([]byte, error)     { return sortedJSON(psRowFields(r)) }
func (r imageRow) MarshalJSON() ([]byte, error)  { return sortedJSON(imageRowFields(r)) }
func (r volumeRow) MarshalJSON() ([]byte, error) { return sortedJSON(volumeRowFields(r)) }

// checkRowTemplate runs a --format template once on an empty row, as
// docker's ps does before it lists anything: a field the row lacks fails
// even when there are no rows.
func checkRowTemplate[T any](format string) error {
	tmpl, _, jsonOut, err := parseFormat(format)
	if err != nil || jsonOut {
		return err
	}
	var zero T
	if err := tmpl.Execute(io.Discard, zero); err != nil {
		return &templateError{msg: fmt.Sprintf("failed to execute template: %v", err), code: errdefs.ExitFailure}
	}
	return nil
}

// formatUsesField tells whether a --format needs a row's field: named in
// an action, or all of them through json (as docker's ps decides whether
// to compute sizes).
func formatUsesField(format, field string) bool {
	f := strings.TrimSpace(format)
	if f == "json" {
		return true
	}
	return strings.Contains(f, "."+field) || strings.Contains(strings.ReplaceAll(f, " ", ""), "json.}}")
}
