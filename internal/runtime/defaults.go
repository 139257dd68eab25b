package runtime

// DefaultMaskedPaths are the paths berth masks in a container that is not
// privileged; inspect reports them as HostConfig.MaskedPaths.
func DefaultMaskedPaths() []string { return defaultMaskedPaths() }

// DefaultReadonlyPaths are the paths berth makes read-only in a container
// that is not privileged; inspect reports them as HostConfig.ReadonlyPaths.
func DefaultReadonlyPaths() []string { return defaultReadonlyPaths() }
