package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// WriteBundle writes spec as dir/config.json, the OCI form of a bundle
// that any runtime reads, creating dir if needed.
func WriteBundle(dir string, spec *specs.Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encoding runtime config: %w", err)
	}
	return writeBundleFile(dir, "config.json", data)
}

// WriteBundle writes the bundle as config.json.
func (r *Binary) WriteBundle(dir string, spec *specs.Spec) error { return WriteBundle(dir, spec) }

// writeBundleFile writes data as dir/name, creating dir if needed. The
// file appears complete or not at all (written to a temporary name, then
// renamed), so a crash never leaves a half-written config. It is not
// fsynced: bundles live under the runroot, a tmpfs that does not survive a
// power loss anyway. The file is readable by root only, since the
// environment may carry secrets.
func writeBundleFile(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("creating bundle: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return fmt.Errorf("writing bundle config: %w", err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing bundle config: %w", err)
	}
	return nil
}

// ReadSpec reads a bundle's config.json.
func ReadSpec(bundle string) (*specs.Spec, error) {
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("reading the runtime spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(bundle, "config.json"), err)
	}
	if spec.Process == nil || spec.Root == nil || spec.Linux == nil {
		return nil, errdefs.InvalidArgument("%s: process, root and linux are required", filepath.Join(bundle, "config.json"))
	}
	return &spec, nil
}

// RemoveBundleFiles removes from dir what any runtime's WriteBundle
// writes there.
func RemoveBundleFiles(dir string) {
	os.Remove(filepath.Join(dir, "config.json"))
	os.Remove(filepath.Join(dir, planFile))
}

// ReadBundleProcess returns the process of the spec in bundle, whichever
// runtime's form the bundle was written in: the base of an exec or a
// health check in the container.
func ReadBundleProcess(bundle string) (*specs.Process, error) {
	c, spec, err := readBundle(bundle)
	switch {
	case err != nil:
		return nil, err
	case c != nil:
		return c.Spec.Process, nil
	}
	return spec.Process, nil
}
