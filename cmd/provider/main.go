// Command provider is the Vault provider for the Secrets Store CSI driver. It
// runs on every node (a DaemonSet) and serves the provider API on a Unix
// socket in the driver's providers directory.
//
// `provider mount [flags] SPC.yaml` instead runs the same Mount pipeline once,
// in-process, for a SecretProviderClass file (cmd/provider/app/mount): a check of
// the class and the Vault role's policies before deploying.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/cmd/provider/app"
	"github.com/vault-csi-provider/vault-csi-provider/cmd/provider/app/mount"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/buildinfo"
	"github.com/vault-csi-provider/vault-csi-provider/internal/kubeapi"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/server"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

type options struct {
	endpoint      string
	healthAddr    string
	pprof         bool
	kubeconfig    string
	kubeQPS       float64
	kubeBurst     int
	hmacName      string
	hmacNamespace string
	hmacKeyFile   string
	cacheSize     int
	leaseSize     int
	idsPerPod     int
	leasesPerPod  int
	refresh       float64
	fetchConc     int
	maxResponse   int
	grace         time.Duration
	grpc          server.Options
	vaultOpts     vault.Options
	defaults      config.Defaults
	debug         bool
	logFormat     string
	showVersion   bool
	// -log-level, -output: hashicorp/vault-csi-provider's flags.
	logLevelName  string
	logLevel      logLevel
	versionOutput string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == mount.Name {
		os.Exit(runMount(os.Args[2:]))
	}
	klog.InitFlags(nil)
	flag.CommandLine.Usage = usage(flag.CommandLine)
	o, err := parseFlags(flag.CommandLine, os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.showVersion {
		if err := buildinfo.Read().Write(os.Stdout, o.versionOutput); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if err := o.logLevel.apply(flag.CommandLine); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if o.logFormat == "json" {
		klog.SetLogger(o.logLevel.filter(jsonLogger()))
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

// runMount runs `provider mount` and returns its exit status.
func runMount(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	code := mount.Main(ctx, args, mount.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Getenv)
	klog.Flush()
	return code
}

func usage(fs *flag.FlagSet) func() {
	return func() {
		name := filepath.Base(fs.Name())
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]                 serve the provider API on -endpoint\n", name)
		fmt.Fprintf(fs.Output(), "       %s mount [flags] SPC.yaml  mount a SecretProviderClass once, locally (%s mount -h)\n\nFlags:\n", name, name)
		fs.PrintDefaults()
	}
}

// parseFlags reads flags whose defaults come from the VAULT_* environment, so
// the precedence is environment < flag < SecretProviderClass.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) (*options, error) {
	o := &options{}
	fs.StringVar(&o.endpoint, "endpoint", "/var/run/secrets-store-csi-providers/vault.sock", "Unix socket the driver connects to (path or unix:// URL)")
	fs.StringVar(&o.healthAddr, "health-addr", ":8080", "address for /healthz, /readyz and /metrics; empty to disable")
	fs.BoolVar(&o.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on -health-addr (for profiling)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig for the Kubernetes API (default: in-cluster config; without either the provider runs without Kubernetes)")
	fs.Float64Var(&o.kubeQPS, "kube-api-qps", 50, "client-side rate limit for Kubernetes API calls")
	fs.IntVar(&o.kubeBurst, "kube-api-burst", 100, "client-side burst for Kubernetes API calls")
	fs.StringVar(&o.hmacName, "hmac-secret-name", "vault-csi-provider-hmac-key", "Secret (in -hmac-secret-namespace) holding the object-version HMAC key; created on first use")
	fs.StringVar(&o.hmacNamespace, "hmac-secret-namespace", "", "namespace of the HMAC key Secret (default: $POD_NAMESPACE, else the service account's namespace)")
	fs.StringVar(&o.hmacKeyFile, "hmac-key-file", "", "file with a 32-byte HMAC key (raw, hex or base64) to use instead of the Kubernetes Secret")
	fs.IntVar(&o.cacheSize, "cache-size", 1000, "maximum number of cached Vault tokens (pod identities); when full, the pod holding the most loses its least recently used (forgotten, not revoked)")
	fs.IntVar(&o.leaseSize, "lease-cache-size", cache.DefaultMaxEntries, "maximum number of cached leased answers (dynamic credentials, certificates); when full, the pod holding the most loses its least recently used")
	fs.IntVar(&o.idsPerPod, "max-identities-per-pod", cache.DefaultMaxTokensPerPod, "Vault tokens (identities: role, auth mount, Vault address...) one pod keeps cached; beyond, its least recently used is forgotten")
	fs.IntVar(&o.leasesPerPod, "max-leases-per-pod", cache.DefaultMaxLeasesPerPod, "leased answers (dynamic credentials, certificates) one pod keeps cached; beyond, its least recently used is forgotten")
	fs.Float64Var(&o.refresh, "refresh-fraction", cache.DefaultRefreshFraction, "share of a token's, lease's or certificate's lifetime after which it is renewed or replaced (0-1)")
	fs.IntVar(&o.fetchConc, "fetch-concurrency", provider.DefaultFetchConcurrency, "Vault calls one Mount makes at once")
	fs.IntVar(&o.maxResponse, "max-response-bytes", provider.MaxResponseBytes, "largest Mount response; match the driver's --max-call-recv-msg-size")
	fs.IntVar(&o.grpc.MaxConcurrentMounts, "max-concurrent-mounts", server.DefaultMaxConcurrentMounts, "Mounts run at once; more wait in a queue")
	fs.IntVar(&o.grpc.MaxConcurrentMountsPerPod, "max-concurrent-mounts-per-pod", server.DefaultMaxConcurrentMountsPerPod, "Mounts one pod runs at once; waiting pods are served in turn")
	fs.IntVar(&o.grpc.MaxQueuedMounts, "max-queued-mounts", server.DefaultMaxQueuedMounts, "Mounts waiting for a slot; more are refused with ResourceExhausted")
	fs.DurationVar(&o.grace, "shutdown-grace", 20*time.Second, "time in-flight Mounts get to finish on SIGTERM")
	fs.BoolVar(&o.debug, "debug", false, "verbose logging (same as -log-level=debug, -v=4)")
	fs.StringVar(&o.logLevelName, "log-level", "", "trace (-v=6), debug (-v=4), info, warn, error or off (default info, or debug with -debug); never lowers -v")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&o.showVersion, "version", false, "print version and exit")
	fs.StringVar(&o.versionOutput, "output", "", "-version output format: json, json-pretty or yaml (default one line of text)")

	app.VaultFlags(fs, &o.defaults, &o.vaultOpts, getenv)
	app.LimitFlags(fs, &o.defaults.Limits)

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		if fs.Arg(0) == mount.Name {
			return nil, fmt.Errorf("unexpected arguments: %q (the mount subcommand comes first: provider mount [flags] SPC.yaml)", fs.Args())
		}
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := app.CheckVaultFlags(&o.defaults, &o.vaultOpts); err != nil {
		return nil, err
	}
	if o.refresh <= 0 || o.refresh >= 1 {
		return nil, fmt.Errorf("-refresh-fraction %v must be between 0 and 1", o.refresh)
	}
	if o.cacheSize < 1 {
		return nil, fmt.Errorf("-cache-size %d must be at least 1", o.cacheSize)
	}
	for _, l := range []struct {
		name string
		v    int
	}{
		{"max-concurrent-mounts", o.grpc.MaxConcurrentMounts},
		{"max-concurrent-mounts-per-pod", o.grpc.MaxConcurrentMountsPerPod},
		{"max-queued-mounts", o.grpc.MaxQueuedMounts},
		{"max-identities-per-pod", o.idsPerPod},
		{"max-leases-per-pod", o.leasesPerPod},
	} {
		if l.v < 1 {
			return nil, fmt.Errorf("-%s %d must be at least 1", l.name, l.v)
		}
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return nil, fmt.Errorf("-log-format %q: use text or json", o.logFormat)
	}
	var err error
	if o.logLevel, err = parseLogLevel(o.logLevelName, o.debug); err != nil {
		return nil, err
	}
	if err := buildinfo.CheckFormat(o.versionOutput); err != nil {
		return nil, fmt.Errorf("-output: %w", err)
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
	p := app.NewProvider(o.defaults, o.vaultOpts, app.Tuning{
		CacheSize:        o.cacheSize,
		LeaseCacheSize:   o.leaseSize,
		IdentitiesPerPod: o.idsPerPod,
		LeasesPerPod:     o.leasesPerPod,
		RefreshFraction:  o.refresh,
		FetchConcurrency: o.fetchConc,
		MaxResponseBytes: o.maxResponse,
	}, kube, keys)

	lis, err := server.Listen(socket)
	if err != nil {
		return err
	}
	gs := server.NewGRPC(p, buildinfo.Get(), o.grpc)

	if o.healthAddr != "" {
		var hopts []server.HealthOption
		if o.pprof {
			hopts = append(hopts, server.WithPprof())
		}
		hs := &http.Server{Addr: o.healthAddr, Handler: server.NewHealthHandler(lis, hopts...), ReadHeaderTimeout: 5 * time.Second}
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
		return app.ReadKeyFile(o.hmacKeyFile)
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
