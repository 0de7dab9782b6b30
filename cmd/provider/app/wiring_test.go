package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestLimitFlags(t *testing.T) {
	newFS := func(l *config.Limits) *flag.FlagSet {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		LimitFlags(fs, l)
		return fs
	}

	var l config.Limits
	if err := newFS(&l).Parse(nil); err != nil {
		t.Fatal(err)
	}
	if l != config.DefaultLimits {
		t.Errorf("without flags: %+v, want the defaults %+v", l, config.DefaultLimits)
	}

	l = config.Limits{}
	// Under the names the refusals give.
	err := newFS(&l).Parse([]string{
		"-" + config.FlagMaxAttributesBytes, "1", "-" + config.FlagMaxObjectsBytes, "2", "-" + config.FlagMaxObjects, "3",
		"-" + config.FlagMaxTemplateBytes, "4", "-" + config.FlagMaxTemplatesBytes, "5", "-" + config.FlagMaxSecretArgsBytes, "6",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := config.Limits{MaxAttributesBytes: 1, MaxObjectsBytes: 2, MaxObjects: 3, MaxTemplateBytes: 4, MaxTemplatesBytes: 5, MaxSecretArgsBytes: 6}
	if l != want {
		t.Errorf("flags set %+v, want %+v", l, want)
	}

}

// -fetch-concurrency reaches the provider: a Mount of more objects than the
// limit never has more Vault calls in flight than it, and has that many
// (each read is slowed down, so those let through overlap).
func TestNewProviderFetchConcurrency(t *testing.T) {
	for _, tt := range []struct{ set, want int }{{3, 3}, {0, provider.DefaultFetchConcurrency}} {
		t.Run(fmt.Sprint(tt.set), func(t *testing.T) {
			v := vaulttest.New(t)
			v.EnableAuth("kubernetes").Role("app", vaulttest.Role{JWTs: []string{"pod-jwt"}})
			var objects strings.Builder
			for i := range 12 {
				v.PutKV(fmt.Sprintf("kv/s%d", i), map[string]any{"k": fmt.Sprintf("v%d", i)})
				fmt.Fprintf(&objects, "- {objectName: s%d, secretPath: kv/s%d, secretKey: k}\n", i, i)
			}
			v.Delay("kv/", 150*time.Millisecond)
			p := NewProvider(
				config.Defaults{VaultAddress: v.URL(), AuthMountPath: "kubernetes"},
				vault.Options{MaxRetries: 0},
				Tuning{FetchConcurrency: tt.set},
				nil,
				objversion.StaticKey([]byte("0123456789abcdef0123456789abcdef")),
			)
			toks, _ := json.Marshal(map[string]config.ServiceAccountToken{"vault": {Token: "pod-jwt"}})
			attrs, _ := json.Marshal(map[string]string{
				config.ParamRoleName:          "app",
				config.ParamObjects:           objects.String(),
				config.AttrPodName:            "app-0",
				config.AttrPodNamespace:       "apps",
				config.AttrPodUID:             "uid",
				config.AttrServiceAccountName: "app",
				config.AttrServiceAccountToks: string(toks),
			})
			resp, err := p.Mount(context.Background(), &pb.MountRequest{Attributes: string(attrs), Secrets: "null", Permission: "420", TargetPath: "/target"})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Files) != 12 || string(resp.Files[11].Contents) != "v11" {
				t.Fatalf("got %d files, the last %q", len(resp.Files), resp.Files[len(resp.Files)-1].Contents)
			}
			if n := v.Count("GET", "kv/"); n != 12 {
				t.Errorf("%d reads, want 12", n)
			}
			if got := v.MaxInFlight(); got != tt.want {
				t.Errorf("%d Vault calls in flight at once, want %d", got, tt.want)
			}
		})
	}
}
func TestNewProviderPodQuotas(t *testing.T) {
	tests := []struct {
		name       string
		perPod     int
		wantLogins int
	}{
		{name: "one identity a pod", perPod: 1, wantLogins: 3},
		{name: "zero: the default quota", perPod: 0, wantLogins: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv := vaulttest.New(t)
			fv.EnableAuth("jwt").Role("a", vaulttest.Role{}).Role("b", vaulttest.Role{})
			p := NewProvider(config.Defaults{}, vault.Options{}, Tuning{CacheSize: 10, IdentitiesPerPod: tt.perPod}, nil, objversion.StaticKey(make([]byte, 32)))
			vc, err := p.Vault.Client(vault.Target{Address: fv.URL()})
			if err != nil {
				t.Fatal(err)
			}
			for _, role := range []string{"a", "b", "a"} {
				cfg := &config.Config{VaultAddress: fv.URL(), AuthMountPath: "jwt", RoleName: role, Token: "jwt",
					Pod: config.Pod{Namespace: "ns", Name: "pod", UID: "uid"}}
				if _, err := p.Credentials.Token(context.Background(), vc, cache.IdentityOf(cfg, cfg.VaultAddress), cfg); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(fv.Logins()); n != tt.wantLogins {
				t.Errorf("%d logins, want %d", n, tt.wantLogins)
			}
		})
	}
}
