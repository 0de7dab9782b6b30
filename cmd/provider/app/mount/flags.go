package mount

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/cmd/provider/app"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/provider"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// FakePodUID is the pod UID sent when neither -pod-uid nor a Pod file gives
// one. Vault's kubernetes and jwt auth do not check it; a token requested
// from the API server (-kubeconfig) is bound to a real pod and needs its UID.
const FakePodUID = "00000000-0000-0000-0000-000000000000"

// Defaults of the pod identity without a Pod file.
const (
	DefaultPodName        = "mount-check"
	DefaultServiceAccount = "default"
	DefaultVolume         = "secrets-store-inline"
	// DefaultTimeout is kubelet's deadline for a CSI NodePublishVolume.
	DefaultTimeout = 2 * time.Minute
)

type options struct {
	spcFile string

	name, podFile, volume                         string
	podName, podNamespace, podUID, serviceAccount string

	tokenFile  string
	kubeconfig string

	out        string
	showValues bool

	hmacKeyFile string
	timeout     time.Duration
	revoke      bool

	defaults    config.Defaults
	vaultOpts   vault.Options
	fetchConc   int
	maxResponse int
}

// usageError is a mistake in the command line or the files it names: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// sections group the flags in -h, in this order.
var sections = []struct {
	title string
	flags []string
}{
	{"SecretProviderClass and pod", []string{"name", "pod", "volume", "pod-name", "pod-namespace", "pod-uid", "service-account"}},
	{"Service account token (one of)", []string{"token-file", "kubeconfig"}},
	{"Output", []string{"out", "show-values"}},
	{"Vault (the server's flags and VAULT_* variables)", []string{"vault-addr", "vault-mount", "vault-namespace", "vault-tls-ca-cert", "vault-tls-ca-directory", "vault-tls-server-name", "vault-tls-client-cert", "vault-tls-client-key", "vault-tls-skip-verify", "allowed-vault-addresses", "vault-max-retries", "vault-timeout", "vault-client-cache-size"}},
	{"Provider", []string{"hmac-key-file", "revoke", "timeout", "fetch-concurrency", "max-response-bytes", "v"}},
	{"Limits on the SecretProviderClass (the server's flags)", []string{config.FlagMaxAttributesBytes, config.FlagMaxObjectsBytes, config.FlagMaxObjects, config.FlagMaxTemplateBytes, config.FlagMaxTemplatesBytes, config.FlagMaxSecretArgsBytes}},
}

const synopsis = `Usage: provider mount [flags] SPC.yaml

Runs the provider's Mount once, in this process, exactly as the Secrets Store
CSI driver would call it for one pod volume: the SecretProviderClass's
parameters overlaid with the pod's volumeAttributes, the pod's identity and
its service account token, encoded as the driver encodes them. Use it to check
a SecretProviderClass and the Vault role's policies before deploying.

SPC.yaml holds the SecretProviderClass (YAML or JSON, several documents or a
List allowed; "-" reads standard input). Without -out it prints what would be
mounted, values hidden; with -out DIR it writes the files with the driver's
own atomic writer. On failure it prints the gRPC code and message the pod's
events would show (e.g. "PermissionDenied: Vault refused login as role ...")
and exits 1; mistakes in the command line or the files exit 2.
`

// newFlagSet registers the flags. It prints nothing: parseArgs prints the
// usage for -h, and Main the error for anything else.
func newFlagSet(o *options, getenv func(string) string) *flag.FlagSet {
	fs := flag.NewFlagSet("provider mount", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}

	fs.StringVar(&o.name, "name", "", "use the SecretProviderClass called `NAME` when SPC.yaml holds several (default: the only one, or the one the pod's volume names)")
	fs.StringVar(&o.podFile, "pod", "", "a Pod `FILE` (YAML or JSON, e.g. from kubectl get pod -o yaml; a Deployment, StatefulSet, DaemonSet, Job or CronJob works too): its name, namespace, uid, serviceAccountName and the volumeAttributes of its secrets-store CSI volume, which override the class's parameters as in the driver")
	fs.StringVar(&o.volume, "volume", "", "mount the pod's CSI volume called `NAME`, when it has several")
	fs.StringVar(&o.podName, "pod-name", "", "pod `NAME` (default: the Pod file's, else "+DefaultPodName+")")
	fs.StringVar(&o.podNamespace, "pod-namespace", "", "pod `NAMESPACE` (default: the Pod file's, else the class's metadata.namespace, else the token's, else default)")
	fs.StringVar(&o.podUID, "pod-uid", "", "pod `UID` (default: the Pod file's, else "+FakePodUID+")")
	fs.StringVar(&o.serviceAccount, "service-account", "", "the pod's service account `NAME` (default: the Pod file's, else the token's subject, else "+DefaultServiceAccount+")")

	fs.StringVar(&o.tokenFile, "token-file", "", "a `FILE` holding a service account JWT for the class's audience (its audience parameter, default vault), e.g. from kubectl create token SA --audience vault; \"-\" reads standard input. Passed as the driver passes it (csi.storage.k8s.io/serviceAccount.tokens); never printed")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "without -token-file: request a pod-bound token with this kubeconfig `FILE` (the provider's TokenRequest fallback, as when the CSIDriver has no tokenRequests); the pod must exist, so give -pod from the cluster or -pod-name and -pod-uid")

	fs.StringVar(&o.out, "out", "", "write the files into `DIR` with the driver's atomic writer (created if missing; must be empty or hold an earlier mount)")
	fs.BoolVar(&o.showValues, "show-values", false, "print the values (quoted) instead of <hidden, N bytes>")

	app.VaultFlags(fs, &o.defaults, &o.vaultOpts, getenv)
	app.LimitFlags(fs, &o.defaults.Limits)

	fs.StringVar(&o.hmacKeyFile, "hmac-key-file", "", "a `FILE` with the provider's 32-byte object-version key (raw, hex or base64) to print the versions the cluster would show (default: a random key; versions are then only indicative)")
	fs.BoolVar(&o.revoke, "revoke", true, "revoke the Vault token afterwards, and with it the leases (dynamic credentials) issued under it; -revoke=false keeps them until they expire")
	fs.DurationVar(&o.timeout, "timeout", DefaultTimeout, "deadline of the Mount (by default kubelet's for NodePublishVolume)")
	fs.IntVar(&o.fetchConc, "fetch-concurrency", provider.DefaultFetchConcurrency, "Vault calls the Mount makes at once")
	fs.IntVar(&o.maxResponse, "max-response-bytes", provider.MaxResponseBytes, "largest Mount response; match the driver's --max-call-recv-msg-size")

	// klog's -v, the provider's log verbosity (logs go to standard error and
	// never hold secret values).
	var kfs flag.FlagSet
	klog.InitFlags(&kfs)
	fs.Var(kfs.Lookup("v").Value, "v", "provider log verbosity `LEVEL` (2: each Vault call's outcome; 4: debug)")
	return fs
}

// printUsage prints the synopsis and the flags by section.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, synopsis)
	listed := map[string]bool{}
	for _, s := range sections {
		fmt.Fprintf(w, "\n%s:\n", s.title)
		for _, name := range s.flags {
			f := fs.Lookup(name)
			if f == nil {
				continue
			}
			listed[name] = true
			printFlag(w, f)
		}
	}
	var rest []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !listed[f.Name] {
			rest = append(rest, f)
		}
	})
	if len(rest) > 0 {
		fmt.Fprintf(w, "\nOther:\n")
		for _, f := range rest {
			printFlag(w, f)
		}
	}
}

// printFlag prints one flag the way flag.PrintDefaults does.
func printFlag(w io.Writer, f *flag.Flag) {
	name, usage := flag.UnquoteUsage(f)
	line := "  -" + f.Name
	if name != "" {
		line += " " + name
	}
	if len(line) <= 4 {
		line += "\t"
	} else {
		line += "\n    \t"
	}
	line += wrap(usage)
	switch {
	case f.DefValue == "" || f.DefValue == "false" || f.DefValue == "0":
	case isStringFlag(f):
		line += fmt.Sprintf(" (default %q)", f.DefValue)
	default:
		line += fmt.Sprintf(" (default %v)", f.DefValue)
	}
	fmt.Fprintln(w, wrapDefault(line))
}

// usageWidth is where flag descriptions wrap.
const usageWidth = 78

// wrap breaks a flag's description into lines indented like
// flag.PrintDefaults' ("    \t").
func wrap(s string) string {
	return strings.Join(wrapWords(s, usageWidth-8), "\n    \t")
}

// wrapDefault re-wraps the last line after " (default ...)" was appended.
func wrapDefault(line string) string {
	i := strings.LastIndex(line, "\n    \t")
	if i < 0 {
		return line
	}
	return line[:i] + "\n    \t" + wrap(line[i+len("\n    \t"):])
}

func wrapWords(s string, width int) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(word) > width {
			lines = append(lines, cur)
			cur = word
			continue
		}
		if cur != "" {
			cur += " "
		}
		cur += word
	}
	return append(lines, cur)
}

func isStringFlag(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(string)
	return ok
}

// parseArgs parses the command line. Flags may come before or after SPC.yaml;
// after "--" everything is positional. For -h it prints the usage to help
// and returns flag.ErrHelp.
func parseArgs(args []string, getenv func(string) string, help io.Writer) (*options, error) {
	o := &options{}
	fs := newFlagSet(o, getenv)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printUsage(help, fs)
				return nil, err
			}
			return nil, &usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	switch len(positional) {
	case 0:
		return nil, usagef("no SecretProviderClass file: provider mount [flags] SPC.yaml")
	case 1:
		o.spcFile = positional[0]
	default:
		return nil, usagef("one SecretProviderClass file, please; got %q (choose a class in a file with -name)", positional)
	}
	switch {
	case o.spcFile == "-" && (o.tokenFile == "-" || o.podFile == "-"):
		return nil, usagef("only one of SPC.yaml, -pod and -token-file can read standard input")
	case o.podFile == "-" && o.tokenFile == "-":
		return nil, usagef("only one of SPC.yaml, -pod and -token-file can read standard input")
	case o.volume != "" && o.podFile == "":
		return nil, usagef("-volume chooses a volume of the -pod file; give -pod too")
	case o.tokenFile == "" && o.kubeconfig == "":
		return nil, usagef("no service account token: give -token-file with a JWT for the class's audience (e.g. `kubectl create token SA -n NS --audience vault > token`), or -kubeconfig to have the provider request one for the pod")
	case o.timeout <= 0:
		return nil, usagef("-timeout %v must be positive", o.timeout)
	case o.fetchConc < 1:
		return nil, usagef("-fetch-concurrency %d must be at least 1", o.fetchConc)
	case o.maxResponse < 1:
		return nil, usagef("-max-response-bytes %d must be positive", o.maxResponse)
	}
	if err := app.CheckVaultFlags(&o.defaults, &o.vaultOpts); err != nil {
		return nil, &usageError{err}
	}
	return o, nil
}
