package container

import (
	"context"
	"strconv"
	"time"

	"github.com/berth-dev/berth/internal/container/logfile"
	"github.com/berth-dev/berth/internal/errdefs"
)

// LogWriterOptions reads --log-opt values of the json-file driver.
func LogWriterOptions(cfg map[string]string) (logfile.WriterOptions, error) {
	var o logfile.WriterOptions
	for k, v := range cfg {
		switch k {
		case "max-size":
			n, err := logfile.ParseSize(v)
			if err != nil {
				return o, errdefs.InvalidArgument("invalid --log-opt max-size=%s: %v", v, err)
			}
			o.MaxSize = n
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, errdefs.InvalidArgument("invalid --log-opt max-file=%s: it must be a positive number", v)
			}
			o.MaxFiles = n
		case "compress", "labels", "env", "env-regex", "tag", "mode", "max-buffer-size":
		default:
			return o, errdefs.InvalidArgument("unknown log opt '%s' for json-file log driver", k)
		}
	}
	if o.MaxFiles > 1 && o.MaxSize == 0 {
		return o, errdefs.InvalidArgument("max-file cannot be set without max-size")
	}
	if o.MaxFiles == 0 {
		o.MaxFiles = 1
	}
	return o, nil
}

// LogsOptions are `logs` flags.
type LogsOptions struct {
	Follow       bool
	Tail         int // <0 all
	Since, Until time.Time
}

// Logs reads a container's log.
func (s *Service) Logs(ctx context.Context, ref string, opts LogsOptions, fn func(logfile.Entry) error) error {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.HostConfig.LogConfig.Type != "json-file" || c.LogPath == "" {
		return errdefs.InvalidArgument("configured logging driver does not support reading")
	}
	ro := logfile.ReadOptions{Tail: opts.Tail, Since: opts.Since, Until: opts.Until, Follow: opts.Follow}
	if opts.Follow {
		if c.State.Running || c.State.Restarting {
			ro.Done = s.StoppedChan(ctx, c.ID)
		} else {
			done := make(chan struct{})
			close(done)
			ro.Done = done
		}
	}
	return logfile.Read(ctx, c.LogPath, ro, fn)
}
