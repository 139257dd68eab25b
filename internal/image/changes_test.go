package image

import (
	"reflect"
	"testing"
)

func TestApplyChanges(t *testing.T) {
	tests := []struct {
		name    string
		changes []string
		want    ContainerSpec
		wantErr bool
	}{
		{"cmd exec form", []string{`CMD ["echo","hi"]`}, ContainerSpec{Cmd: []string{"echo", "hi"}}, false},
		{"cmd shell form", []string{`CMD echo hi`}, ContainerSpec{Cmd: []string{"/bin/sh", "-c", "echo hi"}}, false},
		{"entrypoint", []string{`ENTRYPOINT ["/bin/sh"]`}, ContainerSpec{Entrypoint: []string{"/bin/sh"}}, false},
		{"env pairs", []string{`ENV A=1 B="two words"`}, ContainerSpec{Env: []string{"A=1", "B=two words"}}, false},
		{"env legacy", []string{`ENV A one two`}, ContainerSpec{Env: []string{"A=one two"}}, false},
		{"env overrides", []string{`ENV A=1`, `ENV A=2`}, ContainerSpec{Env: []string{"A=2"}}, false},
		{"workdir relative", []string{`WORKDIR /app`, `WORKDIR sub`}, ContainerSpec{WorkingDir: "/app/sub"}, false},
		{"expose", []string{`EXPOSE 80 53/udp`}, ContainerSpec{ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}}}, false},
		{"label", []string{`LABEL a=b`}, ContainerSpec{Labels: map[string]string{"a": "b"}}, false},
		{"user", []string{`USER nobody`}, ContainerSpec{User: "nobody"}, false},
		{"unknown", []string{`RUN echo`}, ContainerSpec{}, true},
		{"env without value", []string{`ENV`}, ContainerSpec{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got ContainerSpec
			err := ApplyChanges(&got, tc.changes)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
