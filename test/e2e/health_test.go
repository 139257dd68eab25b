package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestHealthCheck(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "hc", "--health-cmd", "test -e /healthy", "--health-interval", "200ms",
		"--health-retries", "2", "busybox", "sh", "-c", "touch /healthy; sleep 1000")
	eventually(t, 20*time.Second, "healthy", func() bool {
		return e.inspect("hc", "{{.State.Health.Status}}") == "healthy"
	})
	if ps := e.must("ps", "--format", "{{.Status}}", "--filter", "name=hc"); !strings.Contains(ps, "(healthy)") {
		t.Fatalf("ps status %q", ps)
	}
	e.must("exec", "hc", "rm", "/healthy")
	eventually(t, 20*time.Second, "unhealthy", func() bool {
		return e.inspect("hc", "{{.State.Health.Status}}") == "unhealthy"
	})
	if n := e.inspect("hc", "{{.State.Health.FailingStreak}}"); n == "0" || n == "1" {
		t.Fatalf("failing streak %s", n)
	}
	if got := e.must("ps", "-q", "--filter", "health=unhealthy"); strings.TrimSpace(got) == "" {
		t.Fatal("health filter found nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := e.command(ctx, "events", "--since", "1h", "--until", "0s", "--filter", "container=hc")
	out, _ := ev.Output()
	for _, want := range []string{"create", "start", "health_status: healthy", "health_status: unhealthy"} {
		if !strings.Contains(string(out), "container "+want+" ") {
			t.Fatalf("events lack %q:\n%s", want, out)
		}
	}
	// --no-healthcheck disables an image's check.
	e.must("run", "-d", "--name", "nohc", "--no-healthcheck", "busybox", "sleep", "100")
	if h := e.inspect("nohc", "{{json .State.Health}}"); h != "null" {
		t.Fatalf("health with --no-healthcheck: %s", h)
	}
}
