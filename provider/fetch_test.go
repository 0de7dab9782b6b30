package provider

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// setAttr sets one attribute of a Mount request, as a SecretProviderClass
// parameter would.
func setAttr(t *testing.T, req *pb.MountRequest, key, value string) {
	t.Helper()
	var a map[string]string
	if err := json.Unmarshal([]byte(req.Attributes), &a); err != nil {
		t.Fatal(err)
	}
	a[key] = value
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	req.Attributes = string(b)
}

// failoverPair is two fake Vaults set up alike (newVault), except that the
// second one's secret says which Vault served it, and a Mount request
// listing them in that order.
func failoverPair(t *testing.T) (first, second *vaulttest.Server, req *pb.MountRequest) {
	t.Helper()
	first, second = newVault(t), newVault(t)
	second.PutKV2("secret/data/app", map[string]any{"username": "second-user", "port": 5432})
	req = mountRequest(t, "- {objectName: user, secretPath: secret/data/app, secretKey: username}\n", true)
	setAttr(t, req, config.ParamVaultAddress, first.URL()+","+second.URL())
	return first, second, req
}

// served reads vault_address_served_total by position.
func served() [2]float64 {
	return [2]float64{
		testutil.ToFloat64(metrics.VaultAddressServed.WithLabelValues("0")),
		testutil.ToFloat64(metrics.VaultAddressServed.WithLabelValues("1")),
	}
}

// withAndWithoutCache runs f with a provider without the credentials cache
// (every Mount logs in) and with one that has it, as the server is wired:
// logins go through different code in each.
func withAndWithoutCache(t *testing.T, f func(t *testing.T, p *Provider)) {
	t.Run("no cache", func(t *testing.T) { f(t, addressedProvider()) })
	t.Run("cache", func(t *testing.T) {
		p := addressedProvider()
		p.Credentials = cache.New(p.Auth, cache.Options{})
		f(t, p)
	})
}

// addressedProvider is newProvider without a default Vault address: the
// requests name theirs.
func addressedProvider() *Provider {
	return &Provider{
		Defaults: config.Defaults{AuthMountPath: "kubernetes"},
		Vault:    vault.NewPool(vault.Options{MaxRetries: 0}),
		Auth:     &auth.Authenticator{},
		Keys:     objversion.StaticKey([]byte("0123456789abcdef0123456789abcdef")),
	}
}

// The failover rules: a connection error or a 5xx at the first address moves
// on to the second, which serves the Mount; a 4xx (at login or at a read) is
// Vault's answer and final, and the second address is never asked.
func TestMountFailover(t *testing.T) {
	tests := []struct {
		name        string
		fault       func(first, second *vaulttest.Server)
		want        codes.Code
		servedBy    int      // the position that served, when want is OK
		wantMsg     []string // SECOND stands for the second Vault's URL
		movesOn     bool     // a failing Mount tried the second address
		secondAsked bool     // by a failing Mount (a closed Vault counts nothing)
		firstReads  int      // -1: not checked
	}{
		{
			name:       "first serves: the second is never asked",
			fault:      func(first, second *vaulttest.Server) {},
			want:       codes.OK,
			servedBy:   0,
			firstReads: 1,
		},
		{
			name:       "403 policy denial on a read is final",
			fault:      func(first, second *vaulttest.Server) { first.Deny("secret/data/app") },
			want:       codes.PermissionDenied,
			wantMsg:    []string{`object "user"`, "Vault answered 403", `Vault role "app"`},
			firstReads: 1,
		},
		{
			name:       "404 on a read is final",
			fault:      func(first, second *vaulttest.Server) { first.Fail("secret/data/app", http.StatusNotFound) },
			want:       codes.NotFound,
			wantMsg:    []string{`object "user"`, "Vault answered 404", "check secretPath"},
			firstReads: 1,
		},
		{
			name: "400 on a read is final",
			fault: func(first, second *vaulttest.Server) {
				first.Fail("secret/data/app", http.StatusBadRequest, "invalid request")
			},
			want:       codes.InvalidArgument,
			wantMsg:    []string{`object "user"`, "Vault answered 400: invalid request"},
			firstReads: 1,
		},
		{
			name: "500 on a read moves on",
			fault: func(first, second *vaulttest.Server) {
				first.Fail("secret/data/app", http.StatusInternalServerError, "internal error")
			},
			want:       codes.OK,
			servedBy:   1,
			firstReads: 1,
		},
		{
			name: "sealed (503) moves on",
			fault: func(first, second *vaulttest.Server) {
				first.Fail("", http.StatusServiceUnavailable, "Vault is sealed")
			},
			want:       codes.OK,
			servedBy:   1,
			firstReads: 0, // the login was refused already
		},
		{
			name:       "refused connections move on",
			fault:      func(first, second *vaulttest.Server) { first.Close() },
			want:       codes.OK,
			servedBy:   1,
			firstReads: 0,
		},
		{
			// net/http may retry an idempotent request on a fresh
			// connection once: the reads are not counted.
			name:       "a connection closed without an answer moves on",
			fault:      func(first, second *vaulttest.Server) { first.CloseConn("secret/") },
			want:       codes.OK,
			servedBy:   1,
			firstReads: -1,
		},
		{
			name: "500 at login moves on",
			fault: func(first, second *vaulttest.Server) {
				first.Fail("auth/", http.StatusInternalServerError, "internal error")
			},
			want:       codes.OK,
			servedBy:   1,
			firstReads: 0,
		},
		{
			name: "403 at login is final",
			fault: func(first, second *vaulttest.Server) {
				first.EnableAuth("kubernetes").Role("app", vaulttest.Role{JWTs: []string{"someone-else"}})
			},
			want:       codes.PermissionDenied,
			wantMsg:    []string{`Vault refused login as role "app"`, "Vault answered 403"},
			firstReads: 0,
		},
		{
			name: "400 at login is final",
			fault: func(first, second *vaulttest.Server) {
				first.Fail("auth/kubernetes/login", http.StatusBadRequest, `role "app" could not be found`)
			},
			want:       codes.PermissionDenied,
			wantMsg:    []string{`Vault refused login as role "app"`, "Vault answered 400"},
			firstReads: 0,
		},
		{
			name: "every address answers 5xx",
			fault: func(first, second *vaulttest.Server) {
				first.Fail("secret/", http.StatusInternalServerError, "internal error")
				second.Fail("", http.StatusServiceUnavailable, "Vault is sealed")
			},
			want:        codes.Unavailable,
			wantMsg:     []string{"all 2 Vault addresses failed; the last:", "Vault answered 503: Vault is sealed"},
			movesOn:     true,
			secondAsked: true,
			firstReads:  1,
		},
		{
			name: "every address refuses connections",
			fault: func(first, second *vaulttest.Server) {
				first.Close()
				second.Close()
			},
			want:       codes.Unavailable,
			wantMsg:    []string{"all 2 Vault addresses failed; the last:", "cannot reach Vault at " + "SECOND"},
			movesOn:    true,
			firstReads: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withAndWithoutCache(t, func(t *testing.T, p *Provider) {
				logs := captureLogs(t)
				first, second, req := failoverPair(t)
				tt.fault(first, second)
				before := served()
				resp, err := p.Mount(context.Background(), req)
				if got := status.Code(err); got != tt.want {
					t.Fatalf("Mount = %v (code %v), want %v", err, got, tt.want)
				}
				delta := served()
				delta[0] -= before[0]
				delta[1] -= before[1]

				if tt.want == codes.OK {
					byFirst := tt.servedBy == 0
					wantUser, wantServed := "second-user", [2]float64{0, 1}
					if byFirst {
						wantUser, wantServed = "app-user", [2]float64{1, 0}
					}
					if len(resp.Files) != 1 || string(resp.Files[0].Contents) != wantUser {
						t.Errorf("files %q, want user=%s", files(resp), wantUser)
					}
					if delta != wantServed {
						t.Errorf("vault_address_served_total rose by %v (positions 0, 1), want %v", delta, wantServed)
					}
					if n := second.Count("", ""); byFirst && n != 0 {
						t.Errorf("the second Vault got %d requests, want none: %v", n, second.Calls())
					} else if !byFirst && (second.Count("", "auth/kubernetes/login") != 1 || second.Count("GET", "secret/data/app") != 1) {
						t.Errorf("the second Vault got %v, want one login and one read", second.Calls())
					}
				} else {
					msg := status.Convert(err).Message()
					for _, w := range tt.wantMsg {
						w = strings.ReplaceAll(w, "SECOND", second.URL())
						if !strings.Contains(msg, w) {
							t.Errorf("message %q does not contain %q", msg, w)
						}
					}
					if delta != [2]float64{} {
						t.Errorf("vault_address_served_total rose by %v (positions 0, 1) for a failed Mount", delta)
					}
					if n := second.Count("", ""); !tt.secondAsked && n != 0 {
						t.Errorf("the second Vault got %d requests after a final answer of the first, want none: %v", n, second.Calls())
					} else if tt.secondAsked && n == 0 {
						t.Error("the second Vault was not asked")
					}
				}
				// The log says which address failed, when one was left for
				// another.
				movedOn := (tt.want == codes.OK && tt.servedBy == 1) || tt.movesOn
				logged := strings.Contains(logs.String(), `"Vault address failed; trying the next one"`) &&
					strings.Contains(logs.String(), `address="`+first.URL()+`"`)
				if logged != movedOn {
					t.Errorf("moved on to the second address: %v; logged so: %v\n%s", movedOn, logged, logs)
				}
				if n := first.Count("GET", "secret/data/app"); tt.firstReads >= 0 && n != tt.firstReads {
					t.Errorf("the first Vault got %d reads, want %d", n, tt.firstReads)
				}
			})
		})
	}
}

// A first Vault that hangs holds the Mount until its deadline: then the
// Mount ends with DeadlineExceeded, and the second address is not tried
// once the deadline has passed.
func TestMountFailoverHangUntilDeadline(t *testing.T) {
	for _, prefix := range []string{"auth/", "secret/"} {
		t.Run("hang at "+prefix, func(t *testing.T) {
			withAndWithoutCache(t, func(t *testing.T, p *Provider) {
				logs := captureLogs(t)
				first, second, req := failoverPair(t)
				release := first.Hold(prefix)
				defer release()
				before := served()
				ctx, cancel := context.WithTimeout(context.Background(), 750*time.Millisecond)
				defer cancel()
				start := time.Now()
				_, err := p.Mount(ctx, req)
				took := time.Since(start)
				if status.Code(err) != codes.DeadlineExceeded {
					t.Fatalf("Mount = %v, want DeadlineExceeded", err)
				}
				if took > 5*time.Second {
					t.Errorf("Mount returned %v after its deadline", took)
				}
				if first.Count("", prefix) == 0 {
					t.Fatalf("the first Vault was never asked at %s: the hang was not exercised", prefix)
				}
				// Anything the Mount set off after its deadline has had time
				// to arrive.
				time.Sleep(50 * time.Millisecond)
				if n := second.Count("", ""); n != 0 {
					t.Errorf("the second Vault got %d requests after the deadline: %v", n, second.Calls())
				}
				// Nor was it set off without a request: the log would say.
				if out := logs.String(); strings.Contains(out, "trying the next one") {
					t.Errorf("after the deadline the provider moved on to the next address:\n%s", out)
				}
				if after := served(); after != before {
					t.Errorf("vault_address_served_total moved from %v to %v", before, after)
				}
			})
		})
	}
}

// A hang shorter than the Mount's deadline, cut by the per-attempt timeout
// (-vault-timeout), is a connection error: the second address serves.
func TestMountFailoverAttemptTimeout(t *testing.T) {
	logs := captureLogs(t)
	first, second, req := failoverPair(t)
	p := addressedProvider()
	p.Vault = vault.NewPool(vault.Options{MaxRetries: 0, Timeout: 500 * time.Millisecond})
	release := first.Hold("secret/")
	defer release()
	before := served()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := p.Mount(ctx, req)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	if got := files(resp); len(got) != 1 || got[0] != "user=second-user" {
		t.Errorf("files %q, want user=second-user", got)
	}
	if d := served()[1] - before[1]; d != 1 {
		t.Errorf("vault_address_served_total{position=\"1\"} rose by %v, want 1", d)
	}
	if first.Count("GET", "secret/data/app") == 0 {
		t.Error("the first Vault was never asked: the hang was not exercised")
	}
	if out := logs.String(); !strings.Contains(out, `address="`+first.URL()+`"`) {
		t.Errorf("the log does not name the address that hung:\n%s", out)
	}
	if second.Count("GET", "secret/data/app") != 1 {
		t.Errorf("the second Vault got %v, want one read", second.Calls())
	}
}
