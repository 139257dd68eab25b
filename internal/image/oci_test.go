package image

import (
	"encoding/json"
	"testing"
)

// Manifests and indexes are hashed: their JSON must keep the field order
// and omissions other OCI tools produce.
func TestOCIJSON(t *testing.T) {
	d := Descriptor{MediaType: MediaTypeImageLayerGzip, Digest: "sha256:ab", Size: 3}
	full := Descriptor{MediaType: "m", Digest: "sha256:cd", Size: 1, URLs: []string{"u"}, Annotations: map[string]string{"k": "v"},
		Data: []byte("hi"), Platform: &Platform{Architecture: "arm64", OS: "linux", OSVersion: "1", OSFeatures: []string{"f"}, Variant: "v8"}, ArtifactType: "a"}
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"manifest", Manifest{Versioned: Versioned{SchemaVersion: 2}, MediaType: MediaTypeImageManifest, Config: Descriptor{MediaType: MediaTypeImageConfig, Digest: "sha256:ef", Size: 2}, Layers: []Descriptor{d}},
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:ef","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:ab","size":3}]}`},
		{"empty manifest", Manifest{}, `{"schemaVersion":0,"config":{"mediaType":"","digest":"","size":0},"layers":null}`},
		{"index", Index{Versioned: Versioned{SchemaVersion: 2}, MediaType: MediaTypeImageIndex, Manifests: []Descriptor{}},
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`},
		{"full descriptor", full,
			`{"mediaType":"m","digest":"sha256:cd","size":1,"urls":["u"],"annotations":{"k":"v"},"data":"aGk=","platform":{"architecture":"arm64","os":"linux","os.version":"1","os.features":["f"],"variant":"v8"},"artifactType":"a"}`},
		{"full manifest", Manifest{Versioned: Versioned{SchemaVersion: 2}, MediaType: "mt", ArtifactType: "at", Config: d, Layers: []Descriptor{}, Subject: &d, Annotations: map[string]string{"k": "v"}},
			`{"schemaVersion":2,"mediaType":"mt","artifactType":"at","config":` + mustJSON(t, d) + `,"layers":[],"subject":` + mustJSON(t, d) + `,"annotations":{"k":"v"}}`},
		{"full index", Index{Versioned: Versioned{SchemaVersion: 2}, MediaType: "mt", ArtifactType: "at", Manifests: []Descriptor{d}, Subject: &d, Annotations: map[string]string{"k": "v"}},
			`{"schemaVersion":2,"mediaType":"mt","artifactType":"at","manifests":[` + mustJSON(t, d) + `],"subject":` + mustJSON(t, d) + `,"annotations":{"k":"v"}}`},
		{"layout", ImageLayout{Version: ImageLayoutVersion}, `{"imageLayoutVersion":"1.0.0"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustJSON(t, tc.v); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
