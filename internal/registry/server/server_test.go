package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestBase(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, p := range []string{"/v2/", "/v2"} {
		w := do(t, s, req{method: "GET", target: p})
		if w.Code != 200 || w.Header().Get("Docker-Distribution-API-Version") != "registry/2.0" || w.Body.String() != "{}" {
			t.Fatalf("%s: %d %v %q", p, w.Code, w.Header(), w.Body.String())
		}
	}
	expect(t, do(t, s, req{method: "GET", target: "/v2/a/unknown-endpoint"}), 404, codeNameUnknown)
	expect(t, do(t, s, req{method: "PATCH", target: "/v2/a/manifests/latest"}), 405, codeUnsupported)
}

// TestNamesNeverLeaveTheRoot sends crafted names, digests, tags and
// upload ids to every endpoint and checks each is refused and that
// nothing was written outside the registry's root (nor inside it, beyond
// its empty layout).
func TestNamesNeverLeaveTheRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s := newTestServer(t, Config{Root: root})
	good := sha([]byte("x"))
	long := strings.Repeat("a", 256)
	names := []string{
		"..", "a/..", "../a", "a/../../b", "%2e%2e", "a/%2e%2e", "%2e%2e/%2e%2e/x", "a%2Fb", "a%2f..%2f..%2fx",
		"a//b", "/a", ".a", "a.", "-a", "_a", "a__-b", "A", "a/B", "a%00b", "a\\b", long, strings.Repeat("ab/", 90) + "c",
	}
	targets := func(name string) []req {
		return []req{
			{method: "GET", target: "/v2/" + name + "/tags/list"},
			{method: "HEAD", target: "/v2/" + name + "/blobs/" + good},
			{method: "DELETE", target: "/v2/" + name + "/blobs/" + good},
			{method: "POST", target: "/v2/" + name + "/blobs/uploads/?digest=" + sha([]byte("y")), body: []byte("y")},
			{method: "POST", target: "/v2/" + name + "/blobs/uploads/?mount=" + good + "&from=a"},
			{method: "PUT", target: "/v2/" + name + "/manifests/latest", body: []byte(`{}`)},
			{method: "GET", target: "/v2/" + name + "/referrers/" + good},
		}
	}
	for _, name := range names {
		for _, r := range targets(name) {
			t.Run(r.method+" "+r.target, func(t *testing.T) {
				w := do(t, s, r)
				if w.Code != 400 && w.Code != 404 {
					t.Fatalf("got %d %s", w.Code, w.Body.String())
				}
				if c := errCode(w); c != codeNameInvalid && c != codeNameUnknown && r.method != "HEAD" {
					t.Fatalf("code %q, want NAME_INVALID", c)
				}
			})
		}
	}
	bad := []req{
		{method: "GET", target: "/v2/a/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd"},
		{method: "GET", target: "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"},
		{method: "GET", target: "/v2/a/blobs/sha256:" + strings.Repeat("A", 64)},
		{method: "GET", target: "/v2/a/blobs/sha512:" + strings.Repeat("a", 64)},
		{method: "DELETE", target: "/v2/a/blobs/sha256:.."},
		{method: "GET", target: "/v2/a/manifests/sha256:..%2f..%2fx"},
		{method: "PUT", target: "/v2/a/manifests/sha256:baddigeststring", body: []byte("{}")},
		{method: "GET", target: "/v2/a/referrers/sha256:.."},
		{method: "POST", target: "/v2/a/blobs/uploads/?digest=sha256:..%2F..%2Fx", body: []byte("x")},
		{method: "POST", target: "/v2/a/blobs/uploads/?mount=sha256:..%2F..&from=b"},
	}
	for _, r := range bad {
		expect(t, do(t, s, r), 400, codeDigestInvalid)
	}
	// Literal slashes make it no endpoint at all.
	expect(t, do(t, s, req{method: "GET", target: "/v2/a/blobs/sha256:../../../../etc/passwd"}), 404, codeNameUnknown)
	for _, target := range []string{"/v2/a/manifests/..", "/v2/a/manifests/.x", "/v2/a/manifests/%2e%2e"} {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			expect(t, do(t, s, req{method: m, target: target, body: []byte("{}")}), 400, codeManifestInvalid)
		}
	}
	for _, id := range []string{"..", "..%2f..%2frepositories", "%2e%2e", strings.Repeat("g", 32), strings.Repeat("a", 33)} {
		for _, m := range []string{"GET", "PATCH", "PUT", "DELETE"} {
			expect(t, do(t, s, req{method: m, target: "/v2/a/blobs/uploads/" + id + "?digest=" + good, body: []byte("x")}), 404, codeBlobUploadUnknown)
		}
	}
	// Nothing beside the root, nothing in it but the empty layout.
	ents, _ := os.ReadDir(parent)
	if len(ents) != 1 {
		t.Fatalf("entries beside the root: %v", ents)
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		switch rel {
		case ".", "blobs", "uploads", "repositories", "tmp":
			return nil
		}
		t.Errorf("unexpected %s", rel)
		return nil
	})
}

func TestBlobs(t *testing.T) {
	s := newTestServer(t, Config{})
	data := []byte("0123456789abcdefghij")
	d := pushBlob(t, s, "team/app", data)

	w := do(t, s, req{method: "HEAD", target: "/v2/team/app/blobs/" + d})
	if w.Code != 200 || w.Header().Get("Content-Length") != "20" || w.Header().Get("Docker-Content-Digest") != d || w.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %v", w.Code, w.Header())
	}
	w = do(t, s, req{method: "GET", target: "/v2/team/app/blobs/" + d})
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), data) {
		t.Fatalf("GET: %d %q", w.Code, w.Body.String())
	}
	w = do(t, s, req{method: "GET", target: "/v2/team/app/blobs/" + d, header: map[string]string{"Range": "bytes=5-9"}})
	if w.Code != 206 || w.Body.String() != "56789" || w.Header().Get("Content-Range") != "bytes 5-9/20" {
		t.Fatalf("Range: %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	w = do(t, s, req{method: "GET", target: "/v2/team/app/blobs/" + d, header: map[string]string{"Range": "bytes=30-40"}})
	if w.Code != 416 {
		t.Fatalf("unsatisfiable Range: %d", w.Code)
	}
	// Another repository does not have it, even though the store does.
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/other/blobs/" + d}), 404, codeBlobUnknown)
	if w := do(t, s, req{method: "HEAD", target: "/v2/team/other/blobs/" + d}); w.Code != 404 || w.Body.Len() != 0 {
		t.Fatalf("HEAD missing: %d %q", w.Code, w.Body.String())
	}
	w = do(t, s, req{method: "DELETE", target: "/v2/team/app/blobs/" + d})
	if w.Code != 202 {
		t.Fatalf("DELETE: %d", w.Code)
	}
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/app/blobs/" + d}), 404, codeBlobUnknown)
	expect(t, do(t, s, req{method: "DELETE", target: "/v2/team/app/blobs/" + d}), 404, codeBlobUnknown)
	// A monolithic upload whose body does not match its digest.
	expect(t, do(t, s, req{method: "POST", target: "/v2/team/app/blobs/uploads/?digest=" + sha([]byte("other")), body: data}), 400, codeDigestInvalid)
	expect(t, do(t, s, req{method: "POST", target: "/v2/team/app/blobs/uploads/?digest=", body: data}), 400, codeDigestInvalid)
	// sha512, monolithic.
	d512 := sha512of(data)
	if w := do(t, s, req{method: "POST", target: "/v2/team/app/blobs/uploads/?digest=" + d512, body: data}); w.Code != 201 || w.Header().Get("Docker-Content-Digest") != d512 {
		t.Fatalf("sha512 push: %d %s", w.Code, w.Body.String())
	}
	if w := do(t, s, req{method: "GET", target: "/v2/team/app/blobs/" + d512}); w.Code != 200 || !bytes.Equal(w.Body.Bytes(), data) {
		t.Fatalf("sha512 GET: %d", w.Code)
	}
}

func TestChunkedUpload(t *testing.T) {
	s := newTestServer(t, Config{})
	data := []byte("hello, chunked world")
	start := func() string {
		w := do(t, s, req{method: "POST", target: "/v2/r/blobs/uploads/"})
		if w.Code != 202 || w.Header().Get("Docker-Upload-UUID") == "" || w.Header().Get("Range") != "0-0" {
			t.Fatalf("POST: %d %v", w.Code, w.Header())
		}
		return w.Header().Get("Location")
	}
	loc := start()
	patch := func(loc string, from, to int, cr string) *httptestRecorder {
		h := map[string]string{"Content-Type": "application/octet-stream"}
		if cr != "" {
			h["Content-Range"] = cr
		}
		return do(t, s, req{method: "PATCH", target: loc, body: data[from:to], header: h})
	}
	if w := patch(loc, 0, 5, "0-4"); w.Code != 202 || w.Header().Get("Range") != "0-4" {
		t.Fatalf("PATCH 1: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	// Out of order: 416 with the current range.
	w := patch(loc, 10, 15, "10-14")
	expect(t, w, 416, codeBlobUploadInvalid)
	if w.Header().Get("Range") != "0-4" {
		t.Fatalf("416 Range %q", w.Header().Get("Range"))
	}
	expect(t, patch(loc, 5, 10, "5-20"), 400, codeBlobUploadInvalid) // range and length disagree
	expect(t, patch(loc, 5, 10, "five-ten"), 400, codeBlobUploadInvalid)
	if w := patch(loc, 5, 10, "5-9"); w.Code != 202 {
		t.Fatalf("PATCH 2: %d", w.Code)
	}
	if w := patch(loc, 10, 15, ""); w.Code != 202 || w.Header().Get("Range") != "0-14" { // streamed
		t.Fatalf("PATCH 3: %d %v", w.Code, w.Header())
	}
	if w := do(t, s, req{method: "GET", target: loc}); w.Code != 204 || w.Header().Get("Range") != "0-14" {
		t.Fatalf("status: %d %v", w.Code, w.Header())
	}
	// Wrong digest at the end: refused, session gone.
	expect(t, do(t, s, req{method: "PUT", target: loc + "?digest=" + sha([]byte("nope")), body: data[15:]}), 400, codeDigestInvalid)
	expect(t, do(t, s, req{method: "GET", target: loc}), 404, codeBlobUploadUnknown)

	loc = start()
	patch(loc, 0, 12, "0-11")
	expect(t, do(t, s, req{method: "PUT", target: loc}), 400, codeDigestInvalid) // no digest
	w = do(t, s, req{method: "PUT", target: loc + "?digest=" + sha(data), body: data[12:], header: map[string]string{"Content-Range": "12-19"}})
	if w.Code != 201 || w.Header().Get("Location") != "/v2/r/blobs/"+sha(data) {
		t.Fatalf("PUT: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	if w := do(t, s, req{method: "GET", target: "/v2/r/blobs/" + sha(data)}); w.Body.String() != string(data) {
		t.Fatalf("content %q", w.Body.String())
	}
	// Sessions belong to their repository; cancel ends them.
	loc = start()
	expect(t, do(t, s, req{method: "GET", target: strings.Replace(loc, "/v2/r/", "/v2/q/", 1)}), 404, codeBlobUploadUnknown)
	if w := do(t, s, req{method: "DELETE", target: loc}); w.Code != 204 {
		t.Fatalf("cancel: %d", w.Code)
	}
	expect(t, do(t, s, req{method: "PATCH", target: loc, body: []byte("x")}), 404, codeBlobUploadUnknown)
	// sha512 in chunks.
	loc = start()
	patch(loc, 0, 7, "0-6")
	if w := do(t, s, req{method: "PUT", target: loc + "?digest=" + sha512of(data), body: data[7:]}); w.Code != 201 {
		t.Fatalf("sha512 PUT: %d %s", w.Code, w.Body.String())
	}
}

type httptestRecorder = httptest.ResponseRecorder

func TestMount(t *testing.T) {
	s := newTestServer(t, Config{})
	d := pushBlob(t, s, "src", []byte("layer"))
	w := do(t, s, req{method: "POST", target: "/v2/dst/blobs/uploads/?mount=" + d + "&from=src"})
	if w.Code != 201 || w.Header().Get("Location") != "/v2/dst/blobs/"+d {
		t.Fatalf("mount: %d %v", w.Code, w.Header())
	}
	if w := do(t, s, req{method: "HEAD", target: "/v2/dst/blobs/" + d}); w.Code != 200 {
		t.Fatalf("mounted blob: %d", w.Code)
	}
	// Not in the source: an upload session instead.
	missing := sha([]byte("missing"))
	if w := do(t, s, req{method: "POST", target: "/v2/dst/blobs/uploads/?mount=" + missing + "&from=src"}); w.Code != 202 || w.Header().Get("Docker-Upload-UUID") == "" {
		t.Fatalf("mount of missing blob: %d %v", w.Code, w.Header())
	}
	if w := do(t, s, req{method: "POST", target: "/v2/dst/blobs/uploads/?mount=" + d + "&from=../src"}); w.Code != 202 {
		t.Fatalf("mount from a bad name: %d", w.Code)
	}
}

func TestManifests(t *testing.T) {
	s := newTestServer(t, Config{})
	m := image(t, s, "team/app", "layer one", "layer two")
	d := sha(m)
	w := putManifest(t, s, "team/app", "v1", m, mtOCIManifest)
	if w.Code != 201 || w.Header().Get("Docker-Content-Digest") != d || w.Header().Get("Location") != "/v2/team/app/manifests/"+d {
		t.Fatalf("PUT: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	for _, ref := range []string{"v1", d} {
		w := do(t, s, req{method: "GET", target: "/v2/team/app/manifests/" + ref})
		if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), m) || w.Header().Get("Content-Type") != mtOCIManifest || w.Header().Get("Docker-Content-Digest") != d {
			t.Fatalf("GET %s: %d %v", ref, w.Code, w.Header())
		}
		w = do(t, s, req{method: "HEAD", target: "/v2/team/app/manifests/" + ref})
		if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != fmt.Sprint(len(m)) {
			t.Fatalf("HEAD %s: %d %v", ref, w.Code, w.Header())
		}
	}
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/app/manifests/v2"}), 404, codeManifestUnknown)
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/app/manifests/" + sha([]byte("x"))}), 404, codeManifestUnknown)

	// Docker schema2 by digest, with sha512.
	dm := bytes.Replace(m, []byte(mtOCIManifest), []byte(mtDockerManifest), 1)
	d512 := sha512of(dm)
	if w := putManifest(t, s, "team/app", d512, dm, mtDockerManifest); w.Code != 201 || w.Header().Get("Docker-Content-Digest") != d512 {
		t.Fatalf("PUT sha512: %d %s", w.Code, w.Body.String())
	}
	if w := do(t, s, req{method: "GET", target: "/v2/team/app/manifests/" + d512}); w.Header().Get("Content-Type") != mtDockerManifest {
		t.Fatalf("schema2 Content-Type %q", w.Header().Get("Content-Type"))
	}

	// A list naming both.
	list, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtDockerList, "manifests": []desc{{MediaType: mtOCIManifest, Digest: d, Size: len(m)}}})
	if w := putManifest(t, s, "team/app", "multi", list, mtDockerList); w.Code != 201 {
		t.Fatalf("list: %d %s", w.Code, w.Body.String())
	}
	bad, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtOCIIndex, "manifests": []desc{{MediaType: mtOCIManifest, Digest: sha([]byte("gone")), Size: 4}}})
	expect(t, putManifest(t, s, "team/app", "bad", bad, mtOCIIndex), 400, codeManifestBlobUnknown)

	cases := []struct {
		name, ref, mt string
		body          []byte
		status        int
		code          string
	}{
		{"not JSON", "x", mtOCIManifest, []byte("not json"), 400, codeManifestInvalid},
		{"schema 1", "x", mtOCIManifest, []byte(`{"schemaVersion":1}`), 400, codeManifestInvalid},
		{"no config", "x", mtOCIManifest, []byte(`{"schemaVersion":2,"layers":[]}`), 400, codeManifestInvalid},
		{"type mismatch", "x", mtDockerManifest, m, 400, codeManifestInvalid},
		{"unknown type", "x", "application/x-mine", m, 400, codeManifestInvalid},
		{"digest mismatch", sha([]byte("other")), mtOCIManifest, m, 400, codeDigestInvalid},
		{"bad tag", "-x", mtOCIManifest, m, 400, codeManifestInvalid},
		{"missing layer", "x", mtOCIManifest, bytes.Replace(m, []byte(sha([]byte("layer two"))), []byte(sha([]byte("layer 3"))), 1), 400, codeManifestBlobUnknown},
		{"layer in another repo only", "x", mtOCIManifest, m, 0, ""}, // placeholder, checked below
		{"oversize", "big", mtOCIManifest, bytes.Repeat([]byte(" "), maxManifestSize+1), 413, codeSizeInvalid},
	}
	for _, c := range cases {
		if c.status == 0 {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			expect(t, putManifest(t, s, "team/app", c.ref, c.body, c.mt), c.status, c.code)
		})
	}
	// Blobs must be in this repository, not merely in the store.
	expect(t, putManifest(t, s, "team/other", "v1", m, mtOCIManifest), 400, codeManifestBlobUnknown)
	// A manifest at the size limit is accepted.
	big := append(bytes.TrimSuffix(m, []byte("}")), []byte(`,"annotations":{"pad":"`)...)
	big = append(big, bytes.Repeat([]byte("p"), maxManifestSize-len(big)-3)...)
	big = append(big, []byte(`"}}`)...)
	if len(big) != maxManifestSize {
		t.Fatalf("padded to %d", len(big))
	}
	if w := putManifest(t, s, "team/app", "big", big, mtOCIManifest); w.Code != 201 {
		t.Fatalf("4 MiB manifest: %d %s", w.Code, w.Body.String())
	}

	// Delete by tag removes the tag only; by digest the revision and its tags.
	if w := do(t, s, req{method: "DELETE", target: "/v2/team/app/manifests/multi"}); w.Code != 202 {
		t.Fatalf("delete tag: %d", w.Code)
	}
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/app/manifests/multi"}), 404, codeManifestUnknown)
	if w := do(t, s, req{method: "DELETE", target: "/v2/team/app/manifests/" + d}); w.Code != 202 {
		t.Fatalf("delete digest: %d", w.Code)
	}
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/app/manifests/v1"}), 404, codeManifestUnknown)
	expect(t, do(t, s, req{method: "DELETE", target: "/v2/team/app/manifests/" + d}), 404, codeManifestUnknown)
	expect(t, do(t, s, req{method: "DELETE", target: "/v2/team/app/manifests/nosuchtag"}), 404, codeManifestUnknown)
}

func TestReferrers(t *testing.T) {
	s := newTestServer(t, Config{})
	m := image(t, s, "r", "base")
	subject := sha(m)
	putManifest(t, s, "r", "v1", m, mtOCIManifest)
	empty := pushBlob(t, s, "r", []byte("{}"))
	art := func(at string, ann string) []byte {
		b, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": mtOCIManifest, "artifactType": at,
			"config":      desc{MediaType: "application/vnd.oci.empty.v1+json", Digest: empty, Size: 2},
			"layers":      []desc{},
			"subject":     desc{MediaType: mtOCIManifest, Digest: subject, Size: len(m)},
			"annotations": map[string]string{"note": ann},
		})
		return b
	}
	sig, sbom := art("application/vnd.example.sig", "a"), art("application/vnd.example.sbom", "b")
	for _, b := range [][]byte{sig, sbom} {
		w := putManifest(t, s, "r", sha(b), b, mtOCIManifest)
		if w.Code != 201 || w.Header().Get("OCI-Subject") != subject {
			t.Fatalf("PUT referrer: %d %v", w.Code, w.Header())
		}
	}
	get := func(q string) (index, http.Header) {
		w := do(t, s, req{method: "GET", target: "/v2/r/referrers/" + subject + q})
		if w.Code != 200 || w.Header().Get("Content-Type") != mtOCIIndex {
			t.Fatalf("referrers: %d %v", w.Code, w.Header())
		}
		var idx index
		if err := json.Unmarshal(w.Body.Bytes(), &idx); err != nil {
			t.Fatal(err)
		}
		return idx, w.Header()
	}
	idx, h := get("")
	if len(idx.Manifests) != 2 || h.Get("OCI-Filters-Applied") != "" || idx.SchemaVersion != 2 {
		t.Fatalf("all: %+v", idx)
	}
	idx, h = get("?artifactType=application/vnd.example.sbom")
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sha(sbom) || idx.Manifests[0].Annotations["note"] != "b" || h.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered: %+v %v", idx, h)
	}
	// Unknown subject: an empty index. Deleted referrer: gone.
	if idx, _ := get(""); len(idx.Manifests) != 2 {
		t.Fatal(idx)
	}
	do(t, s, req{method: "DELETE", target: "/v2/r/manifests/" + sha(sig)})
	if idx, _ := get(""); len(idx.Manifests) != 1 {
		t.Fatalf("after delete: %+v", idx)
	}
	w := do(t, s, req{method: "GET", target: "/v2/r/referrers/" + sha([]byte("nothing"))})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"manifests":[]`) {
		t.Fatalf("unknown subject: %d %s", w.Code, w.Body.String())
	}
	// A subject that does not exist is accepted (the spec's "subject missing").
	orphan := bytes.Replace(sig, []byte(subject), []byte(sha([]byte("nothing"))), 1)
	if w := putManifest(t, s, "r", "orphan", orphan, mtOCIManifest); w.Code != 201 {
		t.Fatalf("missing subject: %d %s", w.Code, w.Body.String())
	}
}

func TestTagsAndCatalogPagination(t *testing.T) {
	s := newTestServer(t, Config{})
	expect(t, do(t, s, req{method: "GET", target: "/v2/nope/tags/list"}), 404, codeNameUnknown)
	m := image(t, s, "team/a")
	for _, tag := range []string{"c", "a", "b", "d"} {
		putManifest(t, s, "team/a", tag, m, mtOCIManifest)
	}
	pushBlob(t, s, "team/b", []byte("x"))
	pushBlob(t, s, "z", []byte("x"))
	list := func(target string) ([]string, string) {
		w := do(t, s, req{method: "GET", target: target})
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", target, w.Code, w.Body.String())
		}
		var v struct{ Tags, Repositories []string }
		json.Unmarshal(w.Body.Bytes(), &v)
		return append(v.Tags, v.Repositories...), w.Header().Get("Link")
	}
	got, link := list("/v2/team/a/tags/list")
	if strings.Join(got, ",") != "a,b,c,d" || link != "" {
		t.Fatal(got, link)
	}
	got, link = list("/v2/team/a/tags/list?n=2")
	if strings.Join(got, ",") != "a,b" || link != `</v2/team/a/tags/list?last=b&n=2>; rel="next"` {
		t.Fatal(got, link)
	}
	got, link = list("/v2/team/a/tags/list?n=2&last=b")
	if strings.Join(got, ",") != "c,d" || link != "" {
		t.Fatal(got, link)
	}
	if got, _ = list("/v2/team/a/tags/list?n=0"); len(got) != 0 {
		t.Fatal(got)
	}
	expect(t, do(t, s, req{method: "GET", target: "/v2/team/a/tags/list?n=-1"}), 400, codePaginationInvalid)
	got, link = list("/v2/_catalog?n=2")
	if strings.Join(got, ",") != "team/a,team/b" || link != `</v2/_catalog?last=team%2Fb&n=2>; rel="next"` {
		t.Fatal(got, link)
	}
	if got, _ = list("/v2/_catalog?last=team/b"); strings.Join(got, ",") != "z" {
		t.Fatal(got)
	}
	// Docker Hub's search shape.
	w := do(t, s, req{method: "GET", target: "/v1/search?q=team&n=1&page=2"})
	var sr struct {
		NumResults int    `json:"num_results"`
		NumPages   int    `json:"num_pages"`
		Page       int    `json:"page"`
		Query      string `json:"query"`
		Results    []struct {
			Name string `json:"name"`
		} `json:"results"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &sr); err != nil || sr.NumResults != 2 || sr.NumPages != 2 || sr.Page != 2 || len(sr.Results) != 1 || sr.Results[0].Name != "team/b" {
		t.Fatalf("search: %s", w.Body.String())
	}
}

func TestReadOnly(t *testing.T) {
	root := t.TempDir()
	rw := newTestServer(t, Config{Root: root})
	m := image(t, rw, "r", "l")
	putManifest(t, rw, "r", "v1", m, mtOCIManifest)
	ro := newTestServer(t, Config{Root: root, ReadOnly: true})
	for _, r := range []req{
		{method: "POST", target: "/v2/r/blobs/uploads/"},
		{method: "PUT", target: "/v2/r/manifests/v2", body: m},
		{method: "DELETE", target: "/v2/r/manifests/v1"},
		{method: "DELETE", target: "/v2/r/blobs/" + sha([]byte("l"))},
		{method: "PATCH", target: "/v2/r/blobs/uploads/" + strings.Repeat("a", 32)},
	} {
		expect(t, do(t, ro, r), 405, codeUnsupported)
	}
	if w := do(t, ro, req{method: "GET", target: "/v2/r/manifests/v1"}); w.Code != 200 {
		t.Fatalf("read-only GET: %d", w.Code)
	}
}

// TestConcurrentPushes pushes the same blobs (chunked) and the same
// manifest from many clients at once: every push succeeds and the store
// holds one intact copy, with no temporary files left.
func TestConcurrentPushes(t *testing.T) {
	s := newTestServer(t, Config{})
	layer := bytes.Repeat([]byte("concurrent layer "), 50000)
	cfg := []byte(`{"os":"linux"}`)
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtOCIManifest,
		"config": desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: sha(cfg), Size: len(cfg)},
		"layers": []desc{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: sha(layer), Size: len(layer)}}})
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("c/r%d", i%3)
			for _, b := range [][]byte{cfg, layer} {
				w := do(t, s, req{method: "POST", target: "/v2/" + repo + "/blobs/uploads/"})
				loc := w.Header().Get("Location")
				for off := 0; off < len(b); off += 100000 {
					end := min(off+100000, len(b))
					if w := do(t, s, req{method: "PATCH", target: loc, body: b[off:end], header: map[string]string{"Content-Range": fmt.Sprintf("%d-%d", off, end-1)}}); w.Code != 202 {
						errs <- fmt.Sprintf("PATCH %d: %s", w.Code, w.Body.String())
						return
					}
				}
				if w := do(t, s, req{method: "PUT", target: loc + "?digest=" + sha(b)}); w.Code != 201 {
					errs <- fmt.Sprintf("PUT %d: %s", w.Code, w.Body.String())
					return
				}
			}
			if w := putManifest(t, s, repo, "latest", m, mtOCIManifest); w.Code != 201 {
				errs <- fmt.Sprintf("manifest %d: %s", w.Code, w.Body.String())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	for i := range 3 {
		w := do(t, s, req{method: "GET", target: fmt.Sprintf("/v2/c/r%d/blobs/%s", i, sha(layer))})
		if !bytes.Equal(w.Body.Bytes(), layer) {
			t.Fatalf("r%d: layer differs", i)
		}
	}
	for _, d := range []string{"tmp", "uploads"} {
		if ents, _ := os.ReadDir(filepath.Join(s.Root(), d)); len(ents) != 0 {
			t.Fatalf("%s/ holds %d entries", d, len(ents))
		}
	}
}
