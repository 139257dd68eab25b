package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
)

// humanDuration renders a duration the way docker's ps and images do
// ("2 minutes", "About an hour").
func humanDuration(d time.Duration) string { return engine.HumanDuration(d) }

// humanSize renders bytes in decimal units with three significant digits,
// as docker prints sizes ("4.26MB").
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	s := fmt.Sprintf("%.3g", f)
	if strings.Contains(s, "e") {
		s = fmt.Sprintf("%.0f", f)
	}
	return s + units[i]
}

// binarySize renders bytes in binary units as docker stats does ("1.5MiB").
func binarySize(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", n, units[i])
}

// ellipsis shortens s to n runes, ending in "…" like docker.
func ellipsis(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// templateFuncs are the functions docker offers in --format templates.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":     strings.Join,
	"split":    strings.Split,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"title":    strings.Title, //nolint:staticcheck // docker offers the same
	"truncate": func(s string, n int) string { return ellipsis(s, n) },
	"pad": func(s string, l, r int) string {
		return strings.Repeat(" ", l) + s + strings.Repeat(" ", r)
	},
	"println": fmt.Sprintln,
}

// parseFormat compiles a --format value. "table ..." prints a header row
// and aligns columns; "json" prints one JSON object per line.
func parseFormat(format string) (tmpl *template.Template, table, jsonOut bool, err error) {
	f := strings.TrimSpace(format)
	switch {
	case f == "json":
		return nil, false, true, nil
	case strings.HasPrefix(f, "table"):
		table = true
		f = strings.TrimSpace(strings.TrimPrefix(f, "table"))
	}
	f = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(f)
	tmpl, err = template.New("").Funcs(templateFuncs).Parse(f)
	if err != nil {
		return nil, false, false, &templateError{msg: fmt.Sprintf("template parsing error: %v", err), code: errdefs.ExitFailure}
	}
	return tmpl, table, false, nil
}

// renderRows prints rows with a format: a Go template, "table TEMPLATE" with
// headers (taken from headers by field name), or "json".
func renderRows[T any](dst io.Writer, format string, rows []T, headers map[string]string) error {
	tmpl, table, jsonOut, err := parseFormat(format)
	if err != nil {
		return err
	}
	// One write for the whole listing, not one per cell: `ps -a` of 500
	// containers made 4,000 write calls.
	w := bufio.NewWriterSize(dst, 64<<10)
	defer w.Flush()
	if jsonOut {
		for _, r := range rows {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s\n", b)
		}
		return nil
	}
	var out io.Writer = w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)
		out = tw
		var hdr bytes.Buffer
		htmpl, err := template.New("header").Funcs(templateFuncs).Parse(headerTemplate(tmpl.Root.String(), headers))
		if err == nil && htmpl.Execute(&hdr, nil) == nil {
			fmt.Fprintln(out, strings.TrimRight(hdr.String(), "\n"))
		}
	}
	for _, r := range rows {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, r); err != nil {
			return &templateError{msg: fmt.Sprintf("failed to execute template: %v", err), code: errdefs.ExitFailure}
		}
		fmt.Fprintln(out, strings.TrimRight(buf.String(), "\n"))
	}
	if tw != nil {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return w.Flush()
}

// headerTemplate replaces each {{.Field}} of a table template by its
// column header.
func headerTemplate(src string, headers map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(src, "{{")
		if i < 0 {
			b.WriteString(src)
			break
		}
		j := strings.Index(src[i:], "}}")
		if j < 0 {
			b.WriteString(src)
			break
		}
		b.WriteString(src[:i])
		action := strings.TrimSpace(src[i+2 : i+j])
		field := action
		if k := strings.LastIndex(action, "."); k >= 0 {
			field = strings.Fields(action[k+1:] + " ")[0]
		}
		h, ok := headers[field]
		if !ok {
			h = strings.ToUpper(field)
		}
		b.WriteString(h)
		src = src[i+j+2:]
	}
	return strings.ReplaceAll(b.String(), "{{", "")
}

// printJSON writes v indented like docker inspect.
func printJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// formatInspect renders each object with a Go template, as docker's inspect
// -f does: on the typed document first (so {{.ID}} works and a missing
// pointer prints <nil>), and when that fails on the document decoded from
// its JSON with missingkey=error (so {{.Id}} works and an unknown field is
// an error, not "<no value>"). The outputs of the objects that rendered
// are printed together, or a lone newline when none did; the errors come
// back one per failing object, in order (an error in objs stands for an
// object that was not found). A template that does not parse fails with
// docker's exit status 64 before anything is printed.
func formatInspect(w io.Writer, format string, objs []any) ([]error, error) {
	f := strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	tmpl, err := template.New("").Funcs(templateFuncs).Parse(f)
	if err != nil {
		return nil, &templateError{msg: fmt.Sprintf("template parsing error: %v", err), code: errdefs.ExitTemplate}
	}
	var out bytes.Buffer
	var errs []error
	for _, o := range objs {
		if lookupErr, ok := o.(error); ok {
			errs = append(errs, lookupErr) // an object not found, in its place
			continue
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, o); err != nil {
			buf.Reset()
			if err := executeRaw(tmpl, &buf, o); err != nil {
				errs = append(errs, objectTemplateError{err})
				continue
			}
		}
		out.Write(buf.Bytes())
		out.WriteByte('\n')
	}
	if out.Len() == 0 {
		out.WriteByte('\n')
	}
	_, err = w.Write(out.Bytes())
	return errs, err
}

// executeRaw runs tmpl on o's JSON form: docker's field names, maps for
// objects, numbers as written (67108864, not 6.7108864e+07).
func executeRaw(tmpl *template.Template, w io.Writer, o any) error {
	raw, err := json.Marshal(o)
	if err != nil {
		return err
	}
	var generic any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return err
	}
	strict, err := tmpl.Clone()
	if err != nil {
		return err
	}
	return strict.Option("missingkey=error").Execute(w, generic)
}

// objectTemplateError is a --format template that failed on an object.
type objectTemplateError struct{ err error }

func (e objectTemplateError) Error() string {
	return fmt.Sprintf("template parsing error: %v", e.err)
}

// formatEach renders objs with a template (version -f, info -f): a
// failing template is an error of exit status 1.
func formatEach(w io.Writer, format string, objs []any) error {
	errs, err := formatInspect(w, format, objs)
	if err != nil {
		return err
	}
	return inspectErrors(errs)
}

// inspectErrors combines the errors of an inspect: when a template failed,
// one exit status 1 with every message on a line of its own, as docker's
// CLI prints them; otherwise the lookup errors as they are.
func inspectErrors(errs []error) error {
	tmplFailed := false
	for _, e := range errs {
		if _, ok := e.(objectTemplateError); ok {
			tmplFailed = true
		}
	}
	if !tmplFailed {
		return joinErrors(errs)
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
		if _, ok := e.(objectTemplateError); !ok {
			msgs[i] = "Error: " + msgs[i]
		}
	}
	return &templateError{msg: strings.Join(msgs, "\n"), code: errdefs.ExitFailure}
}
