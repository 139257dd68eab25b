package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// WriteBundle writes spec as dir/config.json, creating dir if needed. The
// file appears complete or not at all (written to a temporary name, then
// renamed), so a crash never leaves a half-written config. It is not
// fsynced: bundles live under the runroot, a tmpfs that does not survive a
// power loss anyway. The file is readable by root only, since the
// environment may carry secrets.
func WriteBundle(dir string, spec *specs.Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encoding runtime config: %w", err)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("creating bundle: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config.json-*")
	if err != nil {
		return fmt.Errorf("writing bundle config: %w", err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, "config.json"))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing bundle config: %w", err)
	}
	return nil
}
