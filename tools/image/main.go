// Command image builds the provider's container image without a container
// engine: the static binary (and the system CA bundle) as one layer on an
// empty base, a non-root user, written as an image tarball that `docker load`
// or `crane push` accept. The result is checked with go-containerregistry's
// validator, so CI proves the image builds.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func main() {
	binary := flag.String("binary", "", "static provider binary")
	caBundle := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to include (empty to skip)")
	ref := flag.String("tag", "vault-csi-provider:dev", "image reference to record in the tarball")
	out := flag.String("out", "", "tarball to write")
	flag.Parse()
	if err := build(*binary, *caBundle, *ref, *out); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

type file struct {
	path string
	mode int64
	data []byte
}

func build(binary, caBundle, ref, out string) error {
	if binary == "" || out == "" {
		return fmt.Errorf("-binary and -out are required")
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	files := []file{{"vault-csi-provider", 0o755, bin}}
	if caBundle != "" {
		ca, err := os.ReadFile(caBundle)
		if err != nil {
			return err
		}
		files = append(files, file{"etc/ssl/certs/ca-certificates.crt", 0o644, ca})
	}
	// Reproducible: fixed times, fixed owners.
	epoch := time.Unix(0, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "tmp/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Entrypoint = []string{"/vault-csi-provider"}
	cfg.Config.User = "65532:65532"
	cfg.Config.Env = []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "vault-csi-provider"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return err
	}
	// Validate what a consumer gets: the image read back from the tarball
	// (layers, digests, config and manifest all consistent).
	loaded, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		return fmt.Errorf("reading the tarball back: %w", err)
	}
	if err := validate.Image(loaded); err != nil {
		return fmt.Errorf("the built image does not validate: %w", err)
	}
	digest, _ := loaded.Digest()
	fmt.Printf("%s %s %s\n", out, tag, digest)
	return nil
}
