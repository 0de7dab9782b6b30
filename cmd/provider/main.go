// Command provider is the Vault provider for the Secrets Store CSI driver. It
// runs on every node (a DaemonSet) and serves the provider API on a Unix
// socket in the driver's providers directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/buildinfo"
	"github.com/vault-csi-provider/vault-csi-provider/internal/kubeapi"
	"github.com/vault-csi-provider/vault-csi-provider/leasecache"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/server"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

type options struct {
	endpoint      string
	healthAddr    string
	kubeconfig    string
	kubeQPS       float64
	kubeBurst     int
	hmacName      string
	hmacNamespace string
	hmacKeyFile   string
	cacheSize     int
	leaseSize     int
	refresh       float64
	fetchConc     int
	maxResponse   int
	grace         time.Duration
	vaultOpts     vault.Options
	defaults      config.Defaults
	debug         bool
	logFormat     string
	showVersion   bool
}

func main() {
	klog.InitFlags(nil)
	o, err := parseFlags(flag.CommandLine, os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.showVersion {
		fmt.Println(buildinfo.String())
		return
	}
	if o.debug {
		_ = flag.Set("v", "4")
	}
	if o.logFormat == "json" {
		klog.SetLogger(jsonLogger())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o); err != nil {
		klog.ErrorS(err, "Provider failed")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

// parseFlags reads flags whose defaults come from the VAULT_* environment, so
// the precedence is environment < flag < SecretProviderClass.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) (*options, error) {
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	envBool := func(name string) bool {
		b, _ := strconv.ParseBool(getenv(name))
		return b
	}
	envInt := func(name string, def int) int {
		if n, err := strconv.Atoi(getenv(name)); err == nil {
			return n
		}
		return def
	}
	o := &options{}
	fs.StringVar(&o.endpoint, "endpoint", "/var/run/secrets-store-csi-providers/vault.sock", "Unix socket the driver connects to (path or unix:// URL)")
	fs.StringVar(&o.healthAddr, "health-addr", ":8080", "address for /healthz, /readyz and /metrics; empty to disable")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig for the Kubernetes API (default: in-cluster config; without either the provider runs without Kubernetes)")
	fs.Float64Var(&o.kubeQPS, "kube-api-qps", 50, "client-side rate limit for Kubernetes API calls")
	fs.IntVar(&o.kubeBurst, "kube-api-burst", 100, "client-side burst for Kubernetes API calls")
	fs.StringVar(&o.hmacName, "hmac-secret-name", "vault-csi-provider-hmac-key", "Secret (in -hmac-secret-namespace) holding the object-version HMAC key; created on first use")
	fs.StringVar(&o.hmacNamespace, "hmac-secret-namespace", "", "namespace of the HMAC key Secret (default: $POD_NAMESPACE, else the service account's namespace)")
	fs.StringVar(&o.hmacKeyFile, "hmac-key-file", "", "file with a 32-byte HMAC key (raw, hex or base64) to use instead of the Kubernetes Secret")
	fs.IntVar(&o.cacheSize, "cache-size", 1000, "maximum number of cached Vault tokens (pod identities); evicted tokens are revoked")
	fs.IntVar(&o.leaseSize, "lease-cache-size", leasecache.DefaultMaxEntries, "maximum number of cached leased answers (dynamic credentials, certificates)")
	fs.Float64Var(&o.refresh, "refresh-fraction", auth.DefaultRefreshFraction, "share of a token's, lease's or certificate's lifetime after which it is renewed or replaced (0-1)")
	fs.IntVar(&o.fetchConc, "fetch-concurrency", provider.DefaultFetchConcurrency, "Vault calls one Mount makes at once")
	fs.IntVar(&o.maxResponse, "max-response-bytes", provider.MaxResponseBytes, "largest Mount response; match the driver's --max-call-recv-msg-size")
	fs.DurationVar(&o.grace, "shutdown-grace", 20*time.Second, "time in-flight Mounts get to finish on SIGTERM")
	fs.BoolVar(&o.debug, "debug", false, "verbose logging (same as -v=4)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&o.showVersion, "version", false, "print version and exit")

	fs.StringVar(&o.defaults.VaultAddress, "vault-addr", envOr("VAULT_ADDR", "https://127.0.0.1:8200"), "default Vault address [$VAULT_ADDR]")
	fs.StringVar(&o.defaults.AuthMountPath, "vault-mount", "kubernetes", "default Vault auth mount (kubernetes or jwt auth)")
	fs.StringVar(&o.defaults.VaultNamespace, "vault-namespace", getenv("VAULT_NAMESPACE"), "default Vault Enterprise namespace [$VAULT_NAMESPACE]")
	fs.StringVar(&o.defaults.TLS.CACert, "vault-tls-ca-cert", getenv("VAULT_CACERT"), "PEM CA certificate for Vault [$VAULT_CACERT]")
	fs.StringVar(&o.defaults.TLS.CADirectory, "vault-tls-ca-directory", getenv("VAULT_CAPATH"), "directory of PEM CA certificates for Vault [$VAULT_CAPATH]")
	fs.StringVar(&o.defaults.TLS.ServerName, "vault-tls-server-name", getenv("VAULT_TLS_SERVER_NAME"), "TLS server name for Vault [$VAULT_TLS_SERVER_NAME]")
	fs.StringVar(&o.defaults.TLS.ClientCert, "vault-tls-client-cert", getenv("VAULT_CLIENT_CERT"), "client certificate for Vault mTLS [$VAULT_CLIENT_CERT]")
	fs.StringVar(&o.defaults.TLS.ClientKey, "vault-tls-client-key", getenv("VAULT_CLIENT_KEY"), "client key for Vault mTLS [$VAULT_CLIENT_KEY]")
	fs.BoolVar(&o.defaults.TLS.SkipTLSVerify, "vault-tls-skip-verify", envBool("VAULT_SKIP_VERIFY"), "do not verify Vault's certificate (insecure) [$VAULT_SKIP_VERIFY]")
	fs.IntVar(&o.vaultOpts.MaxRetries, "vault-max-retries", envInt("VAULT_MAX_RETRIES", vault.DefaultOptions.MaxRetries), "retries of a Vault call on connection errors and 5xx [$VAULT_MAX_RETRIES]")
	fs.DurationVar(&o.vaultOpts.Timeout, "vault-timeout", vault.DefaultOptions.Timeout, "timeout of one Vault HTTP attempt")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.refresh <= 0 || o.refresh >= 1 {
		return nil, fmt.Errorf("-refresh-fraction %v must be between 0 and 1", o.refresh)
	}
	if o.cacheSize < 1 {
		return nil, fmt.Errorf("-cache-size %d must be at least 1", o.cacheSize)
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, fmt.Errorf("-log-format %q: use text or json", o.logFormat)
	}
	if o.hmacNamespace == "" {
		o.hmacNamespace = getenv("POD_NAMESPACE")
	}
	return o, nil
}

func run(ctx context.Context, o *options) error {
	klog.InfoS("Starting", "version", buildinfo.String(), "endpoint", o.endpoint, "vaultAddr", o.defaults.VaultAddress, "authMount", o.defaults.AuthMountPath)
	socket, err := server.SocketPath(o.endpoint)
	if err != nil {
		return err
	}
	kube, err := kubeClient(o)
	if err != nil {
		return err
	}
	keys, err := keySource(o, kube)
	if err != nil {
		return err
	}
	authn := &auth.Authenticator{}
	if kube != nil { // a nil *kubeapi.Client in the interface would not compare nil
		authn.Kube = kube
	}
	tokens := auth.NewTokenCache(authn, o.cacheSize)
	tokens.RefreshFraction = o.refresh
	p := &provider.Provider{
		Defaults:         o.defaults,
		Vault:            vault.NewPool(o.vaultOpts),
		Auth:             authn,
		Tokens:           tokens,
		Leases:           &leasecache.Cache{RefreshFraction: o.refresh, MaxEntries: o.leaseSize},
		Keys:             keys,
		FetchConcurrency: o.fetchConc,
		MaxResponseBytes: o.maxResponse,
	}

	lis, err := server.Listen(socket)
	if err != nil {
		return err
	}
	gs := server.NewGRPC(p, buildinfo.Get())

	if o.healthAddr != "" {
		h, closeHealth, err := server.NewHealthHandler(socket)
		if err != nil {
			return err
		}
		defer closeHealth()
		hs := &http.Server{Addr: o.healthAddr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				klog.ErrorS(err, "Health endpoint failed", "addr", o.healthAddr)
			}
		}()
		defer hs.Close()
	}
	klog.InfoS("Serving the provider API", "socket", socket)
	return server.Serve(ctx, gs, lis, o.grace)
}

// kubeClient returns a Kubernetes client, or nil when the provider runs
// outside a cluster without -kubeconfig (the demo and local use).
func kubeClient(o *options) (*kubeapi.Client, error) {
	var cfg *rest.Config
	var err error
	if o.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("loading kubeconfig %s: %w", o.kubeconfig, err)
		}
	} else {
		cfg, err = rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			klog.InfoS("No in-cluster config and no -kubeconfig: running without Kubernetes; service account tokens must come from the driver (CSIDriver tokenRequests)")
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
		}
	}
	cfg.QPS = float32(o.kubeQPS)
	cfg.Burst = o.kubeBurst
	cfg.UserAgent = "vault-csi-provider/" + buildinfo.Get()
	return kubeapi.New(cfg)
}

func keySource(o *options, kube *kubeapi.Client) (objversion.KeySource, error) {
	if o.hmacKeyFile != "" {
		b, err := os.ReadFile(o.hmacKeyFile)
		if err != nil {
			return nil, fmt.Errorf("reading -hmac-key-file: %w", err)
		}
		k, err := objversion.ParseKey(b)
		if err != nil {
			return nil, fmt.Errorf("-hmac-key-file %s: %w", o.hmacKeyFile, err)
		}
		return k, nil
	}
	if kube != nil {
		ns := o.hmacNamespace
		if ns == "" {
			b, err := os.ReadFile(serviceAccountNamespaceFile)
			if err != nil {
				return nil, errors.New("cannot tell the provider's namespace for the HMAC key Secret: set -hmac-secret-namespace or $POD_NAMESPACE")
			}
			ns = strings.TrimSpace(string(b))
		}
		return &objversion.SecretKey{Client: kube, Namespace: ns, Name: o.hmacName}, nil
	}
	klog.InfoS("WARNING: no Kubernetes access and no -hmac-key-file: using a random HMAC key, so object versions change when the provider restarts")
	return objversion.RandomKey()
}

// jsonLogger writes klog's structured records as one JSON object a line on
// stderr, honouring -v.
func jsonLogger() logr.Logger {
	verbosity := 0
	if f := flag.Lookup("v"); f != nil {
		verbosity, _ = strconv.Atoi(f.Value.String())
	}
	return funcr.NewJSON(func(obj string) { fmt.Fprintln(os.Stderr, obj) }, funcr.Options{
		LogTimestamp:    true,
		TimestampFormat: time.RFC3339Nano,
		Verbosity:       verbosity,
	})
}
