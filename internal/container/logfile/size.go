package logfile

import (
	"math"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// ParseSize parses a json-file --log-opt max-size value such as "100",
// "10k", "10m", "1g" or "1.5MB".
//
// It accepts what Docker accepts (Docker parses max-size with go-units'
// FromHumanSize): a non-negative decimal number, optionally one space, and
// an optional case-insensitive unit: "b", or one of k, m, g, t, p optionally
// followed by "b" or "ib". The multipliers are decimal, as Docker's are:
// "10k" is 10000 bytes, "1m" is 1000000, and "1kib" is 1000 too. Fractions
// are truncated to whole bytes. Like Docker, it rejects a size that is not
// positive: max-size 0 does not mean "unlimited".
func ParseSize(s string) (int64, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, errdefs.InvalidArgument("invalid max-size %q: empty value", s)
	}
	i := 0
	for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
		i++
	}
	num, unit := in[:i], strings.ToLower(strings.TrimPrefix(in[i:], " "))
	if num == "" {
		return 0, errdefs.InvalidArgument("invalid max-size %q: want a non-negative number followed by an optional unit (b, k, m, g, t, p)", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, errdefs.InvalidArgument("invalid max-size %q: bad number %q", s, num)
	}
	mult, ok := sizeUnit(unit)
	if !ok {
		return 0, errdefs.InvalidArgument("invalid max-size %q: unknown unit %q (want b, k, m, g, t or p, optionally followed by \"b\")", s, in[i:])
	}
	v *= mult
	if v >= math.MaxInt64 {
		return 0, errdefs.InvalidArgument("invalid max-size %q: too large", s)
	}
	n := int64(v)
	if n <= 0 {
		return 0, errdefs.InvalidArgument("invalid max-size %q: must be a positive number of bytes", s)
	}
	return n, nil
}

// sizeUnit returns the multiplier for a lower-case unit suffix.
func sizeUnit(unit string) (float64, bool) {
	if unit == "" || unit == "b" {
		return 1, true
	}
	var mult float64
	switch unit[0] {
	case 'k':
		mult = 1e3
	case 'm':
		mult = 1e6
	case 'g':
		mult = 1e9
	case 't':
		mult = 1e12
	case 'p':
		mult = 1e15
	default:
		return 0, false
	}
	switch unit[1:] {
	case "", "b", "ib":
		return mult, true
	}
	return 0, false
}
