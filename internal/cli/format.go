package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/berth-dev/berth/internal/errdefs"
)

// humanDuration renders a duration the way docker's ps and images do
// ("2 minutes", "About an hour").
func humanDuration(d time.Duration) string {
	seconds := int(d.Seconds())
	switch {
	case seconds < 1:
		return "Less than a second"
	case seconds == 1:
		return "1 second"
	case seconds < 60:
		return fmt.Sprintf("%d seconds", seconds)
	}
	minutes := int(d.Minutes())
	switch {
	case minutes == 1:
		return "About a minute"
	case minutes < 60:
		return fmt.Sprintf("%d minutes", minutes)
	}
	hours := int(d.Hours() + 0.5)
	switch {
	case hours == 1:
		return "About an hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		return fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		return fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

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
func renderRows[T any](w io.Writer, format string, rows []T, headers map[string]string) error {
	tmpl, table, jsonOut, err := parseFormat(format)
	if err != nil {
		return err
	}
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
		return tw.Flush()
	}
	return nil
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

// formatEach renders each object with a Go template (docker's inspect -f).
func formatEach(w io.Writer, format string, objs []any) error {
	f := strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	tmpl, err := template.New("").Funcs(templateFuncs).Parse(f)
	if err != nil {
		return &templateError{msg: fmt.Sprintf("template parsing error: %v", err), code: errdefs.ExitTemplate}
	}
	for _, o := range objs {
		// Templates see the JSON shape (docker's field names, maps for objects).
		raw, err := json.Marshal(o)
		if err != nil {
			return err
		}
		var generic any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // 67108864, not 6.7108864e+07
		dec.Decode(&generic)
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, generic); err != nil {
			return &templateError{msg: fmt.Sprintf("template parsing error: %v", err), code: errdefs.ExitFailure}
		}
		fmt.Fprintln(w, buf.String())
	}
	return nil
}
