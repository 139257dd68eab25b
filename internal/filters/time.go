package filters

import (
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

// ParseTime reads the value of an `until`/`since` filter or flag as Docker
// does: a Go duration ("10m", "1h30m"; counted back from now), a Unix timestamp ("1700000000", "1700000000.5"), or an
// RFC 3339 date or date-time, with or without seconds, fraction and zone
// (a value without a zone is in now's zone).
func ParseTime(value string, now time.Time) (time.Time, error) {
	if value != "0" {
		if d, err := time.ParseDuration(value); err == nil {
			// Docker's CLI cuts this to whole seconds, so that
			// `events --until 0s` misses the events of the current
			// second; berth keeps the instant.
			return now.Add(-d), nil
		}
	}
	// A zone is given by Z, "+hh:mm", or a "-hh:mm" after the two dashes
	// of the date.
	zoned := strings.ContainsAny(value, "zZ+") || strings.Count(value, "-") == 3
	var layout string
	switch {
	case strings.Contains(value, "."):
		layout = "2006-01-02T15:04:05.999999999"
	case strings.Contains(value, "T"):
		colons := strings.Count(value, ":")
		if zoned && !strings.ContainsAny(value, "zZ") && colons > 0 {
			colons-- // the zone's own colon
		}
		layout = [...]string{"2006-01-02T15", "2006-01-02T15:04", "2006-01-02T15:04:05"}[min(colons, 2)]
	default:
		layout = "2006-01-02"
	}
	var t time.Time
	var err error
	if zoned {
		t, err = time.Parse(layout+"Z07:00", value)
	} else {
		_, off := now.Zone()
		name, _ := now.Zone()
		t, err = time.ParseInLocation(layout, value, time.FixedZone(name, off))
	}
	if err == nil {
		return t, nil
	}
	if strings.Contains(value, "-") {
		return time.Time{}, errdefs.InvalidArgument("invalid time %q: %v", value, err)
	}
	if t, ok := parseUnix(value); ok {
		return t, nil
	}
	return time.Time{}, errdefs.InvalidArgument("failed to parse value as time or duration: %q", value)
}

// parseUnix reads "seconds[.nanoseconds]".
func parseUnix(value string) (time.Time, bool) {
	secStr, nsStr, hasNs := strings.Cut(value, ".")
	sec, err := strconv.ParseInt(secStr, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var ns int64
	if hasNs {
		// The fraction is digits of a second: ".5" is 500ms.
		if nsStr == "" || len(nsStr) > 9 {
			return time.Time{}, false
		}
		n, err := strconv.ParseInt(nsStr, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, false
		}
		for i := len(nsStr); i < 9; i++ {
			n *= 10
		}
		ns = n
	}
	return time.Unix(sec, ns), true
}
