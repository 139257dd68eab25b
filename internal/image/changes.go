package image

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// ApplyChanges applies Dockerfile instructions given to `import --change` or
// `commit --change` to cfg. Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE,
// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR there.
func ApplyChanges(cfg *ContainerSpec, changes []string) error {
	for _, ch := range changes {
		ch = strings.TrimSpace(ch)
		if ch == "" {
			continue
		}
		instr, rest, _ := strings.Cut(ch, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "CMD":
			cfg.Cmd = parseCommand(rest)
		case "ENTRYPOINT":
			cfg.Entrypoint = parseCommand(rest)
			// docker resets CMD only in builds; --change keeps it.
		case "ENV":
			pairs, err := parseKeyValues(rest, "ENV")
			if err != nil {
				return err
			}
			for _, kv := range pairs {
				cfg.Env = setEnv(cfg.Env, kv[0], kv[1])
			}
		case "LABEL":
			pairs, err := parseKeyValues(rest, "LABEL")
			if err != nil {
				return err
			}
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			for _, kv := range pairs {
				cfg.Labels[kv[0]] = kv[1]
			}
		case "WORKDIR":
			if rest == "" {
				return errdefs.InvalidArgument("--change %q: WORKDIR needs a path", ch)
			}
			if !strings.HasPrefix(rest, "/") {
				rest = strings.TrimSuffix(cfg.WorkingDir, "/") + "/" + rest
			}
			cfg.WorkingDir = rest
		case "USER":
			cfg.User = rest
		case "EXPOSE":
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				cfg.ExposedPorts[p] = struct{}{}
			}
		case "VOLUME":
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			for _, v := range parseCommandList(rest) {
				cfg.Volumes[v] = struct{}{}
			}
		case "STOPSIGNAL":
			cfg.StopSignal = rest
		case "ONBUILD":
			cfg.OnBuild = append(cfg.OnBuild, rest)
		default:
			return errdefs.InvalidArgument("--change %q: %s is not a valid change command (use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR)", ch, instr)
		}
	}
	return nil
}

// parseCommand reads the exec form ["a","b"] or the shell form of CMD and
// ENTRYPOINT.
func parseCommand(s string) []string {
	if strings.HasPrefix(s, "[") {
		var argv []string
		if json.Unmarshal([]byte(s), &argv) == nil {
			return argv
		}
	}
	return []string{"/bin/sh", "-c", s}
}

func parseCommandList(s string) []string {
	if strings.HasPrefix(s, "[") {
		var list []string
		if json.Unmarshal([]byte(s), &list) == nil {
			return list
		}
	}
	return strings.Fields(s)
}

// parseKeyValues reads `k=v k2="v 2"` or the legacy `k v` form.
func parseKeyValues(s, instr string) ([][2]string, error) {
	if s == "" {
		return nil, errdefs.InvalidArgument("%s needs at least one argument", instr)
	}
	first, rest, _ := strings.Cut(s, " ")
	if !strings.Contains(first, "=") {
		return [][2]string{{first, strings.TrimSpace(rest)}}, nil
	}
	var out [][2]string
	for _, w := range splitWords(s) {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, errdefs.InvalidArgument("%s %q: %q is not of the form key=value", instr, s, w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// splitWords splits on blanks outside quotes and removes the quotes.
func splitWords(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
			inWord = true
		case c == '\\' && i+1 < len(s) && quote != '\'':
			i++
			cur.WriteByte(s[i])
			inWord = true
		case quote == 0 && (c == ' ' || c == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if name, _, _ := strings.Cut(e, "="); name == k {
			env[i] = fmt.Sprintf("%s=%s", k, v)
			return env
		}
	}
	return append(env, k+"="+v)
}
