package integration

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
)

// A sealed Vault is the operator's to fix, and the driver should retry:
// Unavailable, with a message that says "sealed", both for a pod that must
// log in and for one whose cached token is still good.
func TestSealedVaultIsUnavailable(t *testing.T) {
	needWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sv, err := testenv.StartVault(ctx, os.Getenv(testenv.VaultBinaryEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer sv.Stop()
	if err := sv.SetupJWTAuth(jwtMount, issuer); err != nil {
		t.Fatal(err)
	}
	if err := sv.PutPolicy("app", appPolicy); err != nil {
		t.Fatal(err)
	}
	if err := sv.JWTRole(jwtMount, "app", appSA, "vault", "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := sv.Write("secret/data/app", map[string]any{"data": map[string]any{"password": "sealed-test-pw"}}); err != nil {
		t.Fatal(err)
	}
	params := map[string]string{
		"roleName":     "app",
		"vaultAddress": sv.Addr,
		"objects":      "- {objectName: pw, secretPath: secret/data/app, secretKey: password}",
	}
	cached := appSA
	cached.PodName, cached.PodUID = "sealed-cached", "uid-sealed-cached"
	req := volume(t, cached, "vault", params)
	mustMount(t, req)
	if got := readFile(t, req.TargetPath, "pw"); got != "sealed-test-pw" {
		t.Fatalf("pw = %q before sealing", got)
	}

	if err := sv.Root.Sys().Seal(); err != nil {
		t.Fatalf("sealing: %v", err)
	}
	if h, err := sv.Root.Sys().SealStatus(); err != nil || !h.Sealed {
		t.Fatalf("Vault not sealed: %+v, %v", h, err)
	}

	fresh := appSA
	fresh.PodName, fresh.PodUID = "sealed-fresh", "uid-sealed-fresh"
	for _, tc := range []struct {
		name string
		sa   testenv.ServiceAccount
	}{
		{"login", fresh},
		{"cached token, read", cached},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := volume(t, tc.sa, "vault", params)
			_, err := mount(t, req)
			wantCode(t, err, codes.Unavailable, "sealed", sv.Addr)
			if entries, _ := os.ReadDir(req.TargetPath); len(entries) != 0 {
				t.Errorf("a failed mount wrote %d entries", len(entries))
			}
		})
	}
}
