package integration

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"

	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
)

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + l.Addr().String()
	l.Close()
	return addr
}

// hangingAddr accepts connections and never answers: any request to it would
// hold a Mount until its deadline.
func hangingAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// sealedVault is a second real Vault, configured like the shared one, then
// sealed: it answers 503 "Vault is sealed".
func sealedVault(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sv, err := testenv.StartVault(ctx, os.Getenv(testenv.VaultBinaryEnv))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sv.Stop)
	if err := sv.Root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	return sv.Addr
}

func TestVaultFailover(t *testing.T) {
	needWorld(t)
	objects := "- {objectName: pw, secretPath: secret/data/app, secretKey: password}"
	for _, tc := range []struct {
		name   string
		addrs  func(t *testing.T) string
		role   string
		code   codes.Code
		served string // position label expected to count the success
		logins int    // at the shared Vault
	}{
		{"first address refuses connections", func(t *testing.T) string { return deadAddr(t) + "," + vlt.Addr }, "app", codes.OK, "1", 1},
		{"first Vault is sealed (503)", func(t *testing.T) string { return sealedVault(t) + ", " + vlt.Addr }, "app", codes.OK, "1", 1},
		{"first address works: the others are never tried", func(t *testing.T) string { return vlt.Addr + "," + hangingAddr(t) }, "app", codes.OK, "0", 1},
		{"a 4xx is final: the next address is not tried", func(t *testing.T) string { return vlt.Addr + "," + hangingAddr(t) }, "no-such-role", codes.PermissionDenied, "", 1},
		{"every address down", func(t *testing.T) string { return deadAddr(t) + "," + deadAddr(t) }, "app", codes.Unavailable, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := appSA
			pod.PodName, pod.PodUID = "failover", "uid-failover-"+tc.name
			params := map[string]string{"roleName": tc.role, "vaultAddress": tc.addrs(t), "objects": objects}
			var before float64
			if tc.served != "" {
				before = testutil.ToFloat64(metrics.VaultAddressServed.WithLabelValues(tc.served))
			}
			audit := newAuditCursor(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req := volume(t, pod, "vault", params)
			_, err := prov.client.Mount(ctx, req)
			if tc.code != codes.OK {
				wantCode(t, err, tc.code)
			} else if err != nil {
				t.Fatalf("mount: %v", err)
			} else if got := readFile(t, req.TargetPath, "pw"); got != "s3cr3t-pw" {
				t.Errorf("pw = %q", got)
			}
			if n := audit.count("auth/jwt/login"); n != tc.logins {
				t.Errorf("%d logins at the working Vault, want %d", n, tc.logins)
			}
			if tc.served != "" {
				if got := testutil.ToFloat64(metrics.VaultAddressServed.WithLabelValues(tc.served)) - before; got != 1 {
					t.Errorf("vault_address_served_total{position=%q} rose by %v, want 1", tc.served, got)
				}
			}
			if tc.code == codes.OK {
				// Tokens are cached per address: a second poll logs in nowhere.
				if _, err := prov.client.Mount(ctx, volume(t, pod, "vault", params)); err != nil {
					t.Fatal(err)
				}
				if n := audit.count("auth/jwt/login"); n != 0 {
					t.Errorf("second poll logged in again (%d logins)", n)
				}
			}
		})
	}
}

func TestVaultAddressListIsValidated(t *testing.T) {
	needWorld(t)
	for _, addrs := range []string{vlt.Addr + ",vault:8200", " , ", strings.Repeat(vlt.Addr+",", 6)} {
		_, err := mount(t, volume(t, appSA, "vault", map[string]string{
			"roleName": "app", "vaultAddress": addrs,
			"objects": "- {objectName: pw, secretPath: secret/data/app, secretKey: password}",
		}))
		wantCode(t, err, codes.InvalidArgument)
	}
}

func TestAllAddressesDownNamesThemAll(t *testing.T) {
	needWorld(t)
	_, err := mount(t, volume(t, appSA, "vault", map[string]string{
		"roleName": "app", "vaultAddress": deadAddr(t) + "," + deadAddr(t),
		"objects": "- {objectName: pw, secretPath: secret/data/app, secretKey: password}",
	}))
	wantCode(t, err, codes.Unavailable, "all 2 Vault addresses failed")
}
