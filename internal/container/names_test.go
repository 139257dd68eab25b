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
