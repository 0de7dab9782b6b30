// Package examples holds the SecretProviderClass examples; this test proves
// each one is accepted by the provider's own parser.
package examples

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewDecoder(bytes.NewReader(b))
			spcs := 0
			for {
				var doc struct {
					Kind string `yaml:"kind"`
					Spec struct {
						Provider   string            `yaml:"provider"`
						Parameters map[string]string `yaml:"parameters"`
					} `yaml:"spec"`
				}
				if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				if doc.Kind != "SecretProviderClass" {
					continue
				}
				spcs++
				if doc.Spec.Provider != "vault" {
					t.Errorf("provider %q, want vault", doc.Spec.Provider)
				}
				attrs := map[string]string{
					config.AttrPodName: "p", config.AttrPodNamespace: "ns", config.AttrPodUID: "uid", config.AttrServiceAccountName: "sa",
				}
				for k, v := range doc.Spec.Parameters {
					attrs[k] = v
				}
				js, _ := json.Marshal(attrs)
				if _, err := config.Parse(string(js), "null", "420", config.Defaults{VaultAddress: "https://vault:8200", AuthMountPath: "kubernetes"}); err != nil {
					t.Errorf("%s does not parse: %v", f, err)
				}
			}
			if spcs == 0 {
				t.Errorf("%s holds no SecretProviderClass", f)
			}
		})
	}
}
