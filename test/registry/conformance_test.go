package registry

import (
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// conformanceModule is the suite's Go module at the version the issue
// names; testdata/conformance pins it (and its go.sum) outside berth's
// own module, so that its dependencies never reach berth's go.mod.
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance"

func buildConformance(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join("testdata", "conformance", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	bin := filepath.Join(dir, "conformance")
	cmd := exec.Command("go", "build", "-o", bin, conformanceModule)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the conformance suite: %v\n%s", err, out)
	}
	return bin
}

type junit struct {
	Suites []struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Disabled int `xml:"disabled,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Status  string    `xml:"status,attr"`
			Failure *struct{} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestConformance runs the OCI distribution-spec conformance suite, its
// full default v1.1 profile (sha512 and referrers included), against
// `berth registry serve`: over plain HTTP without auth, and over TLS with
// token auth (the suite logs in as docker does). Every test must pass;
// none may be skipped.
func TestConformance(t *testing.T) {
	bin := buildConformance(t)
	cert, key, _ := selfSigned(t)
	cases := []struct {
		name       string
		args       []string
		tls        string
		user, pass string
	}{
		{name: "http", tls: "disabled"},
		{name: "tls+token", tls: "enabled", user: "alice", pass: "conformance"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.tls != "disabled" {
				args = append(args, "--tls-cert", cert, "--tls-key", key)
			}
			if c.user != "" {
				args = append(args, "--htpasswd", writeHtpasswd(t, c.user, c.pass), "--auth", "token")
			}
			r := serve(t, append(args, "-q")...)
			results := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Dir = results
			env := []string{}
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "OCI_") {
					env = append(env, kv)
				}
			}
			cmd.Env = append(env, "OCI_REGISTRY="+r.addr, "OCI_TLS="+c.tls, "OCI_VERSION=1.1",
				"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2",
				"OCI_RESULTS_DIR="+results, "OCI_USERNAME="+c.user, "OCI_PASSWORD="+c.pass,
				// The suite's client verifies certificates: trust ours.
				"SSL_CERT_FILE="+cert)
			out, runErr := cmd.CombinedOutput()
			b, err := os.ReadFile(filepath.Join(results, "junit.xml"))
			if err != nil {
				t.Fatalf("no junit.xml (%v): %v\n%s", runErr, err, tail(out, 8192))
			}
			var j junit
			if err := xml.Unmarshal(b, &j); err != nil || len(j.Suites) == 0 {
				t.Fatalf("junit.xml: %v", err)
			}
			s := j.Suites[0]
			for _, tc := range s.Cases {
				if tc.Failure != nil || tc.Status == "failed" {
					t.Errorf("failed: %s", tc.Name)
				}
			}
			summary := map[string]string{}
			for _, l := range strings.Split(string(out), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && strings.HasSuffix(k, "...") {
					summary[strings.Trim(k, " .")] = strings.TrimSpace(v)
				}
			}
			t.Logf("conformance (%s): %s passed, %s failed, %s errors, %s skipped, %s disabled by the default profile (junit: %d tests)",
				c.name, summary["Pass"], summary["FAIL"], summary["Error"], summary["Skip"], summary["Disabled"], s.Tests)
			if runErr != nil || s.Failures != 0 || s.Errors != 0 || s.Skipped != 0 || s.Tests == 0 || summary["FAIL"] != "0" || summary["Skip"] != "0" {
				t.Fatalf("the conformance suite did not pass (%v):\n%s", runErr, tail(out, 8192))
			}
		})
	}
}
