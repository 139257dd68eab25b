package container

import "testing"

func TestValidName(t *testing.T) {
	tests := map[string]bool{
		"web": true, "/web": true, "a1": true, "my_app.v2-x": true, "W": false, "w": false,
		"": false, "/": false, "_web": false, "-web": false, ".web": false, "we b": false, "we/b": false, "wé": false,
	}
	for name, want := range tests {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNewIDIsValid(t *testing.T) {
	for range 100 {
		if id := NewID(); !validID(id) {
			t.Fatalf("NewID() = %q, which validID refuses", id)
		}
	}
	long := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for id, want := range map[string]bool{
		long: true, long[:63]: false, long + "0": false, "": false,
		"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef": false,
		"../../etc/passwd": false,
	} {
		if got := validID(id); got != want {
			t.Errorf("validID(%q) = %v, want %v", id, got, want)
		}
	}
}
