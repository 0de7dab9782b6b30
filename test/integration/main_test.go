// Package integration runs the provider against a real Vault dev server (and
// a real PostgreSQL for database credentials), called over its Unix socket
// the way the Secrets Store CSI driver calls it.
package integration

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/cmd/provider/app"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/driverclient"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/server"
	"github.com/vault-csi-provider/vault-csi-provider/test/testenv"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// The shared world every test mounts against.
var (
	vlt    *testenv.Vault
	pg     *testenv.Postgres
	issuer *testenv.Issuer
	hmac   = objversion.StaticKey([]byte("0123456789abcdef0123456789abcdef"))
	prov   *running
)

// The pod identity most tests mount as.
var appSA = testenv.ServiceAccount{Namespace: "apps", Name: "app", PodName: "app-0", PodUID: "11111111-2222-3333-4444-555555555555"}

const jwtMount = "jwt"

// missing names what this machine lacks for the shared world; empty when
// the world is up. TestMain cannot skip, so every test starts with
// needWorld, which skips with this reason.
var missing string

// requireEnv makes a missing dependency a failure instead of a skip
// (scripts/test.sh sets it; CI does too).
const requireEnv = "VCP_REQUIRE_INTEGRATION"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if missing = missingDeps(); missing != "" {
		if required() {
			fmt.Fprintf(os.Stderr, "FAIL: integration tests required ($%s or $CI is set), but %s\n", requireEnv, missing)
			return 1
		}
		fmt.Fprintf(os.Stderr, "SKIP every integration test: %s\n", missing)
		return m.Run()
	}
	bin := os.Getenv(testenv.VaultBinaryEnv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	// A binary named but not runnable, or a PostgreSQL that does not
	// start, is a broken set-up, never a skip.
	if vlt, err = testenv.StartVault(ctx, bin); err != nil {
		fmt.Fprintln(os.Stderr, "starting vault:", err)
		return 1
	}
	defer vlt.Stop()
	if pg, err = testenv.StartPostgres(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "starting postgres:", err)
		return 1
	}
	defer pg.Stop()
	if err := seed(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "seeding vault:", err)
		return 1
	}
	if prov, err = startProvider(vlt.Addr, hmac); err != nil {
		fmt.Fprintln(os.Stderr, "starting provider:", err)
		return 1
	}
	defer prov.stop()
	return m.Run()
}

// missingDeps names the dependencies this machine does not have at all.
func missingDeps() string {
	var miss []string
	if os.Getenv(testenv.VaultBinaryEnv) == "" {
		miss = append(miss, fmt.Sprintf("no Vault binary ($%s is not set; scripts/build-vault.sh builds one)", testenv.VaultBinaryEnv))
	}
	if err := testenv.PostgresInstalled(); err != nil {
		miss = append(miss, fmt.Sprintf("no PostgreSQL (%v)", err))
	}
	return strings.Join(miss, " and ")
}

func required() bool {
	for _, name := range []string{requireEnv, "CI"} {
		if v := os.Getenv(name); v != "" && v != "0" && v != "false" {
			return true
		}
	}
	return false
}

// needWorld skips t, naming what is missing, when the shared world could
// not be started. Every test in this package calls it first
// (TestEveryTestNeedsWorld checks).
func needWorld(t *testing.T) {
	t.Helper()
	if missing != "" {
		t.Skipf("%s; `make test` sets up everything", missing)
	}
}

const appPolicy = `
path "secret/data/app*"      { capabilities = ["read"] }
path "kv1/*"                 { capabilities = ["read"] }
path "pki/issue/example-com" { capabilities = ["create", "update"] }
path "database/creds/app"    { capabilities = ["read"] }
`

func seed(ctx context.Context) error {
	var err error
	if issuer, err = testenv.NewIssuer("https://issuer.test"); err != nil {
		return err
	}
	steps := []func() error{
		func() error { return vlt.EnableAudit() },
		func() error { return vlt.SetupJWTAuth(jwtMount, issuer) },
		func() error { return vlt.PutPolicy("app", appPolicy) },
		func() error { return vlt.JWTRole(jwtMount, "app", appSA, "vault", "app") },
		func() error { return vlt.JWTRole(jwtMount, "app-custom-aud", appSA, "custom-aud", "app") },
		// KV v2 ("secret/" in dev mode): two versions of secret/app.
		func() error {
			_, err := vlt.Write("secret/data/app", map[string]any{"data": map[string]any{"password": "old-pw", "username": "app"}})
			return err
		},
		func() error {
			_, err := vlt.Write("secret/data/app", map[string]any{"data": map[string]any{
				"password": "s3cr3t-pw", "username": "app", "port": 5432, "tags": []string{"a", "b"},
				"b64": "aGVsbG8gd29ybGQ=", "hex": "68656c6c6f",
			}})
			return err
		},
		// KV v1, with a key called "data" beside others.
		func() error { return vlt.Mount("kv1", "kv", map[string]string{"version": "1"}) },
		func() error {
			_, err := vlt.Write("kv1/app", map[string]any{"api-key": "k1-api", "data": map[string]any{"inner": "x"}})
			return err
		},
		// PKI.
		func() error { return vlt.Mount("pki", "pki", nil) },
		func() error {
			_, err := vlt.Write("sys/mounts/pki/tune", map[string]any{"max_lease_ttl": "87600h"})
			return err
		},
		func() error {
			_, err := vlt.Write("pki/root/generate/internal", map[string]any{"common_name": "Test Root CA", "ttl": "87600h"})
			return err
		},
		func() error {
			_, err := vlt.Write("pki/roles/example-com", map[string]any{"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h"})
			return err
		},
		// Database credentials from the real PostgreSQL.
		func() error { return vlt.Mount("database", "database", nil) },
		func() error {
			_, err := vlt.Write("database/config/pg", map[string]any{
				"plugin_name":    "postgresql-database-plugin",
				"connection_url": pg.VaultConnectionURL(),
				"username":       "postgres",
				"password":       pg.Password,
				"allowed_roles":  "app",
			})
			return err
		},
		func() error {
			_, err := vlt.Write("database/roles/app", map[string]any{
				"db_name":             "pg",
				"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
				"default_ttl":         "1h",
				"max_ttl":             "24h",
			})
			return err
		},
	}
	for i, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return nil
}

// running is an in-process provider on a Unix socket, wired exactly as
// cmd/provider wires it.
type running struct {
	socket string
	client *driverclient.Client
	cancel context.CancelFunc
	done   chan error
}

// newProvider wires a provider with cmd/provider's own wiring and flag
// defaults, with caches whose clock is now (time.Now when nil).
func newProvider(vaultAddr string, key objversion.KeySource, now func() time.Time) *provider.Provider {
	t := app.DefaultTuning()
	t.CacheSize = 100
	t.Now = now
	return app.NewProvider(config.Defaults{VaultAddress: vaultAddr, AuthMountPath: jwtMount}, vault.Options{MaxRetries: 1}, t, nil, key)
}

func startProvider(vaultAddr string, key objversion.KeySource) (*running, error) {
	return serve(newProvider(vaultAddr, key, nil))
}

func serve(p *provider.Provider) (*running, error) {
	dir, err := os.MkdirTemp("", "vcp-sock-")
	if err != nil {
		return nil, err
	}
	socket := filepath.Join(dir, "vault.sock")
	lis, err := server.Listen(socket)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{socket: socket, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- server.Serve(ctx, server.NewGRPC(p, "test", server.Options{}), lis, 5*time.Second) }()
	if r.client, err = driverclient.Dial(socket); err != nil {
		cancel()
		return nil, err
	}
	return r, nil
}

func (r *running) stop() {
	r.client.Close()
	r.cancel()
	<-r.done
	os.RemoveAll(filepath.Dir(r.socket))
}

// Without the world every test must skip, not panic on a nil vlt or pass
// having checked nothing, so each starts with needWorld. This one runs
// everywhere.
func TestEveryTestNeedsWorld(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files found: %v", err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Name.Name == "TestMain" || fn.Name.Name == "TestEveryTestNeedsWorld" {
				continue
			}
			checked++
			if !startsWithNeedWorld(fn) {
				t.Errorf("%s: %s does not start with needWorld(t)", fset.Position(fn.Pos()), fn.Name.Name)
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked only %d tests: the parse is looking in the wrong place", checked)
	}
}

func startsWithNeedWorld(fn *ast.FuncDecl) bool {
	if fn.Body == nil || len(fn.Body.List) == 0 {
		return false
	}
	es, ok := fn.Body.List[0].(*ast.ExprStmt)
	if !ok {
		return false
	}
	call, ok := es.X.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return false
	}
	f, ok := call.Fun.(*ast.Ident)
	return ok && f.Name == "needWorld"
}
