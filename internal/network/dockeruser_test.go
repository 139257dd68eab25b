package network

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDockerUserChainSwitch(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string // file "" = no file
		want       bool
	}{
		{"no file", "", true},
		{"key absent", `{"ip": "127.0.0.1"}`, true},
		{"on", `{"docker-user-chain": true}`, true},
		{"off", `{"docker-user-chain": false}`, false},
		{"invalid json (the attach reports it)", `{`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Service{}
			if tc.file != "" {
				p := filepath.Join(dir, tc.name+".json")
				if err := os.WriteFile(p, []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
				s.SetPublishConfig(PublishConfig{File: p})
			}
			if got := s.dockerUserChain(); got != tc.want {
				t.Errorf("dockerUserChain() = %v, want %v", got, tc.want)
			}
		})
	}
}
