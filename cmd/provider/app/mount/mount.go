// Package mount is `provider mount`: it runs the provider's Mount pipeline
// once, in-process, for a SecretProviderClass file, so an operator can check
// the class and the Vault role's policies from a laptop before deploying.
//
// The request is assembled as kubelet and the Secrets Store CSI driver v1.6.0
// assemble it (the class's parameters overlaid with the pod volume's
// attributes and the pod-info attributes, the service account token under
// csi.storage.k8s.io/serviceAccount.tokens) and encoded with
// internal/driverclient's MountRequest.Encode; provider.Provider.Mount, wired
// as the server wires it (cmd/provider/app), answers; the files are written
// with the driver's fileutil.WritePayloads. Secret values are printed only
// on request, the token never.
package mount

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc/status"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/cmd/provider/app"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/buildinfo"
	"github.com/vault-csi-provider/vault-csi-provider/internal/kubeapi"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// Name is the subcommand's name: `provider mount`.
const Name = "mount"

// Exit statuses.
const (
	ExitOK     = 0
	ExitFailed = 1 // the Mount failed (the gRPC code and message are printed), or writing its files did
	ExitUsage  = 2 // the command line or the files it names are wrong
)

// Stdio are the command's standard streams.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// mountError is the provider's answer to a failed Mount.
type mountError struct{ st *status.Status }

func (e *mountError) Error() string { return e.st.Code().String() + ": " + e.st.Message() }

// Main runs `provider mount` with args (after "mount") and returns the exit
// status. getenv supplies the VAULT_* defaults.
func Main(ctx context.Context, args []string, stdio Stdio, getenv func(string) string) int {
	o, err := parseArgs(args, getenv, stdio.Out)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err == nil {
		err = run(ctx, o, stdio)
	}
	var (
		ue *usageError
		me *mountError
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &me):
		fmt.Fprintln(stdio.Err, me.Error())
		return ExitFailed
	case errors.As(err, &ue):
		fmt.Fprintf(stdio.Err, "provider mount: %v\nRun `provider mount -h` for usage.\n", err)
		return ExitUsage
	default:
		fmt.Fprintf(stdio.Err, "provider mount: %v\n", err)
		return ExitFailed
	}
}

func run(ctx context.Context, o *options, stdio Stdio) error {
	pl, err := prepare(o, stdio.In)
	if err != nil {
		return err
	}
	note := func(format string, args ...any) { fmt.Fprintf(stdio.Err, "note: "+format+"\n", args...) }
	for _, n := range pl.notes {
		note("%s", n)
	}
	if o.out != "" {
		if err := checkOutDir(o.out); err != nil {
			return err
		}
	}
	keys, err := keySource(o)
	if err != nil {
		return err
	}
	var kube *kubeapi.Client
	if o.kubeconfig != "" && o.tokenFile == "" {
		if kube, err = kubeClient(o.kubeconfig); err != nil {
			return err
		}
	}

	p := app.NewProvider(o.defaults, o.vaultOpts, app.Tuning{
		CacheSize:        1,
		LeaseCacheSize:   cache.DefaultMaxEntries,
		RefreshFraction:  cache.DefaultRefreshFraction,
		FetchConcurrency: o.fetchConc,
		MaxResponseBytes: o.maxResponse,
	}, kube, keys)
	req, err := pl.request.Encode()
	if err != nil {
		return err
	}
	mctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	resp, err := p.Mount(mctx, req)
	leased := p.Credentials.Leases() // answers with a lease or expiry: dynamic credentials, certificates
	revoked := revokeTokens(ctx, o, p, stdio.Err)
	if err != nil {
		return &mountError{status.Convert(err)}
	}
	// The driver's checks of the answer (pkg/secrets-store MountContent).
	if e := resp.GetError(); e != nil && e.Code != "" {
		return fmt.Errorf("mount request failed with provider error code %s", e.Code)
	}
	if resp.GetObjectVersion() == nil {
		return errors.New("the provider answered without object versions, which the driver refuses")
	}

	cfg, err := config.Parse(req.GetAttributes(), req.GetSecrets(), req.GetPermission(), o.defaults)
	if err != nil { // cannot happen: Mount parsed the same request
		return err
	}
	if o.out != "" && len(resp.GetFiles()) > 0 {
		if err := writeFiles(o.out, resp.GetFiles()); err != nil {
			return err
		}
	}
	report(stdio.Out, pl, cfg, resp, o)
	if o.hmacKeyFile == "" {
		note("the versions are made with a random key (no -hmac-key-file), so they are only indicative: the cluster's provider reports others")
	}
	if o.out != "" && revoked > 0 && leased > 0 {
		note("the Vault token was revoked, and with it the leases it created: dynamic credentials among the files in %s no longer work (-revoke=false keeps them until they expire)", o.out)
	}
	for _, w := range secretObjectWarnings(pl.spc, resp.GetFiles()) {
		fmt.Fprintf(stdio.Err, "warning: %s\n", w)
	}
	return nil
}

// revokeTokens revokes the Vault token the Mount logged in with, if any
// (whether or not the Mount succeeded), and returns how many it revoked.
func revokeTokens(ctx context.Context, o *options, p *provider.Provider, errw io.Writer) int {
	if !o.revoke {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.vaultOptsTimeout())
	defer cancel()
	n, err := p.Credentials.RevokeAll(ctx)
	if err != nil {
		fmt.Fprintf(errw, "warning: %v (it expires with its TTL)\n", err)
	}
	return n
}

func (o *options) vaultOptsTimeout() time.Duration {
	if o.vaultOpts.Timeout > 0 {
		return o.vaultOpts.Timeout
	}
	return vault.DefaultOptions.Timeout
}

func keySource(o *options) (objversion.KeySource, error) {
	if o.hmacKeyFile != "" {
		k, err := app.ReadKeyFile(o.hmacKeyFile)
		if err != nil {
			return nil, &usageError{err}
		}
		return k, nil
	}
	return objversion.RandomKey()
}

func kubeClient(path string) (*kubeapi.Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, usagef("-kubeconfig %s: %v", path, err)
	}
	cfg.UserAgent = "vault-csi-provider-mount/" + buildinfo.Get()
	return kubeapi.New(cfg)
}

// readInput reads a file, or standard input for "-".
func readInput(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		if stdin == nil {
			return nil, errors.New("no standard input")
		}
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}
