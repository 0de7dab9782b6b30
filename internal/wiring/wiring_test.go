package wiring

import (
	"context"
	"flag"
	"io"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
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

// NewProvider hands the per-pod quotas to the cache: with one identity a
// pod, a pod's second identity evicts its first, which logs in again.
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
