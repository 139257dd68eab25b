package container

import (
	"fmt"
	"os"
	"time"
)

// tracer prints how long the phases of a start take when BERTH_TRACE is
// set (to stderr; the monitor's stderr is passed through for it). It backs
// the breakdown in bench/README.md.
type tracer struct {
	on    bool
	who   string
	start time.Time
	last  time.Time
}

func newTracer(who string) *tracer {
	now := time.Now()
	return &tracer{on: os.Getenv("BERTH_TRACE") != "", who: who, start: now, last: now}
}

func (t *tracer) mark(phase string) {
	if t == nil || !t.on {
		return
	}
	now := time.Now()
	fmt.Fprintf(os.Stderr, "trace %-8s %-28s +%6.2f ms  (at %6.2f ms, wall %s)\n", t.who, phase,
		float64(now.Sub(t.last).Microseconds())/1000, float64(now.Sub(t.start).Microseconds())/1000, now.Format("15:04:05.000000"))
	t.last = now
}
