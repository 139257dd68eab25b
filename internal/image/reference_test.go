package image

import "testing"

func TestParseReference(t *testing.T) {
	tests := []struct {
		in, want, familiar string
		wantErr            bool
	}{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", false},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", false},
		{"me/app", "docker.io/me/app:latest", "me/app:latest", false},
		{"docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest", false},
		{"index.docker.io/me/app", "docker.io/me/app:latest", "me/app:latest", false},
		{"localhost/app", "localhost/app:latest", "localhost/app:latest", false},
		{"localhost:5000/app:v1", "localhost:5000/app:v1", "localhost:5000/app:v1", false},
		{"registry.example.com/a/b/c:tag_1.0-x", "registry.example.com/a/b/c:tag_1.0-x", "registry.example.com/a/b/c:tag_1.0-x", false},
		{"[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest", false},
		{"a__b/c.d-e---f", "docker.io/a__b/c.d-e---f:latest", "a__b/c.d-e---f:latest", false},
		{"busybox@sha256:" + hex64, "docker.io/library/busybox@sha256:" + hex64, "busybox@sha256:" + hex64, false},
		{"busybox:1@sha256:" + hex64, "docker.io/library/busybox:1@sha256:" + hex64, "busybox:1@sha256:" + hex64, false},
		{"UPPER", "", "", true},
		{"Registry.Example.com/app", "Registry.Example.com/app:latest", "Registry.Example.com/app:latest", false},
		{"app:", "", "", true},
		{"app:.bad", "", "", true},
		{"-app", "", "", true},
		{"app-", "", "", true},
		{"a..b", "", "", true},
		{"a___b", "", "", true},
		{"app@sha256:nothex", "", "", true},
		{hex64, "", "", true},
		{"", "", "", true},
		{"host:/app", "", "", true},
		{"a//b", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseReference(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseReference(%q) = %v, want an error", tc.in, r)
				}
				return
			}
			if err != nil || r.String() != tc.want {
				t.Fatalf("ParseReference(%q) = %q, %v; want %q", tc.in, r.String(), err, tc.want)
			}
			if f := FamiliarString(r.String()); f != tc.familiar {
				t.Fatalf("FamiliarString = %q, want %q", f, tc.familiar)
			}
		})
	}
	if _, err := ParseTag("busybox@sha256:" + hex64); err == nil {
		t.Fatal("ParseTag accepted a digest")
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
