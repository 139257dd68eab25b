package image

// The OCI image format (image spec v1.1): berth's own definitions, with the
// spec's JSON field names. Field order and omitempty matter: manifests and
// indexes are hashed, so marshalling must give the bytes other OCI tools
// give for the same document.

import "github.com/berth-dev/berth/internal/digest"

// Media types, annotations and file names of the OCI image spec.
const (
	MediaTypeImageIndex     = "application/vnd.oci.image.index.v1+json"
	MediaTypeImageManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeImageConfig    = "application/vnd.oci.image.config.v1+json"
	MediaTypeImageLayer     = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeImageLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeImageLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"

	// AnnotationRefName is the tag (or full reference) of an index entry
	// in an image layout.
	AnnotationRefName = "org.opencontainers.image.ref.name"

	ImageLayoutFile    = "oci-layout"
	ImageLayoutVersion = "1.0.0"
	ImageIndexFile     = "index.json"
)

// Versioned carries a document's schema version; embedded first so that
// "schemaVersion" leads the JSON as in every OCI tool's output.
type Versioned struct {
	SchemaVersion int `json:"schemaVersion"`
}

// Descriptor points at a blob: its media type, digest and size.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Data         []byte            `json:"data,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
}

// Platform is what an image runs on.
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// Manifest is an image manifest: a config and layers.
type Manifest struct {
	Versioned
	MediaType    string            `json:"mediaType,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Config       Descriptor        `json:"config"`
	Layers       []Descriptor      `json:"layers"`
	Subject      *Descriptor       `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Index lists manifests, one per platform or (in a layout) per tag.
type Index struct {
	Versioned
	MediaType    string            `json:"mediaType,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Manifests    []Descriptor      `json:"manifests"`
	Subject      *Descriptor       `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// ImageLayout is the content of an image layout's oci-layout file.
type ImageLayout struct {
	Version string `json:"imageLayoutVersion"`
}
