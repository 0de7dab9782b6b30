package mount

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"

	"github.com/vault-csi-provider/vault-csi-provider/cmd/provider/app/mount/spcfile"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/driverclient"
)

// identity is the pod the volume is mounted for.
type identity struct {
	name, namespace, uid, serviceAccount string
}

// plan is one Mount, ready to send.
type plan struct {
	spc      *secretsstorev1.SecretProviderClass
	pod      identity
	volume   string
	audience string // under which the token is passed
	request  driverclient.MountRequest
	notes    []string // for standard error; never secret
}

// prepare reads the files the options name and assembles the request the
// driver would send.
func prepare(o *options, stdin io.Reader) (*plan, error) {
	spcData, err := readInput(o.spcFile, stdin)
	if err != nil {
		return nil, usagef("reading the SecretProviderClass: %v", err)
	}
	var pod *spcfile.Pod
	spcName := o.name
	if o.podFile != "" {
		data, err := readInput(o.podFile, stdin)
		if err != nil {
			return nil, usagef("reading -pod: %v", err)
		}
		if pod, err = spcfile.FindPod(data, o.volume, o.name); err != nil {
			return nil, usagef("-pod %s: %v", displayName(o.podFile), err)
		}
		spcName = pod.SecretProviderClass()
	}
	spc, err := spcfile.SecretProviderClass(spcData, spcName)
	if err != nil {
		if pod != nil && o.name == "" {
			return nil, usagef("%s: %v; the pod's volume %s uses class %q", displayName(o.spcFile), err, pod.Volume, spcName)
		}
		return nil, usagef("%s: %v", displayName(o.spcFile), err)
	}

	// The token is read first: the service account it names is the pod's
	// unless the flags or the Pod file say otherwise.
	var (
		jwt    string
		claims *jwtClaims
	)
	if o.tokenFile != "" {
		if jwt, err = readToken(o.tokenFile, stdin); err != nil {
			return nil, err
		}
		if claims, err = inspectJWT(jwt); err != nil {
			return nil, usagef("-token-file %s: %v", displayName(o.tokenFile), err)
		}
	}

	pl := &plan{spc: spc, volume: DefaultVolume, pod: resolveIdentity(o, pod, spc.Namespace, claims)}
	if spc.Namespace != "" && spc.Namespace != pl.pod.namespace {
		return nil, usagef("SecretProviderClass %s is in namespace %q but the pod is in %q: the driver looks the class up in the pod's namespace", spc.Name, spc.Namespace, pl.pod.namespace)
	}
	volumeAttributes := map[string]string{spcfile.SPCAttribute: spc.Name}
	if pod != nil {
		volumeAttributes = pod.VolumeAttributes
		pl.volume = pod.Volume
		if pod.Kind != "Pod" && (o.podName == "" || o.podUID == "") {
			pl.notes = append(pl.notes, fmt.Sprintf("the pods of %s %s get generated names and UIDs; mounting as pod %s, uid %s (-pod-name, -pod-uid to change)", pod.Kind, pod.Name, pl.pod.name, pl.pod.uid))
		}
		if pod.NodePublishSecretRef != "" {
			pl.notes = append(pl.notes, fmt.Sprintf("volume %s's nodePublishSecretRef (Secret %s) is not read: the vault provider takes nothing from node-publish secrets but service account tokens", pod.Volume, pod.NodePublishSecretRef))
		}
	}
	attrs := mergeAttributes(spc.Spec.Parameters, volumeAttributes, pl.pod)
	pl.audience = attrs[config.ParamAudience]
	if pl.audience == "" {
		pl.audience = config.DefaultAudience
	}

	if claims != nil {
		pl.notes = append(pl.notes, claims.check(pl.audience, pl.pod, time.Now())...)
		tokens, err := tokensAttribute(pl.audience, jwt, claims.expiry(time.Now()))
		if err != nil {
			return nil, err
		}
		attrs[config.AttrServiceAccountToks] = tokens
		if o.kubeconfig != "" {
			pl.notes = append(pl.notes, "-kubeconfig is not used: given a token (-token-file), the provider requests none, as when the driver sends one")
		}
	} else {
		pl.notes = append(pl.notes, fmt.Sprintf("no -token-file: the provider requests a token for service account %s/%s bound to pod %s (uid %s) through -kubeconfig, as when the CSIDriver has no tokenRequests", pl.pod.namespace, pl.pod.serviceAccount, pl.pod.name, pl.pod.uid))
		if pl.pod.uid == FakePodUID {
			pl.notes = append(pl.notes, "the pod UID is the placeholder "+FakePodUID+": the API server binds tokens to an existing pod only (give -pod from the cluster, or -pod-name and -pod-uid)")
		}
	}

	pl.request = driverclient.MountRequest{
		Attributes: attrs,
		TargetPath: targetPath(pl.pod.uid, pl.volume),
		Permission: driverclient.DefaultPermission,
	}
	return pl, nil
}

// resolveIdentity takes each field from its flag, else the Pod file, else
// (namespace and service account) the class's namespace and the token's
// subject, else the default.
func resolveIdentity(o *options, pod *spcfile.Pod, spcNamespace string, claims *jwtClaims) identity {
	var fromPod spcfile.Pod
	if pod != nil {
		fromPod = *pod
	}
	var tokNamespace, tokAccount string
	if claims != nil {
		tokNamespace, tokAccount, _ = claims.serviceAccount()
	}
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	return identity{
		name:           first(o.podName, fromPod.Name, DefaultPodName),
		namespace:      first(o.podNamespace, fromPod.Namespace, spcNamespace, tokNamespace, "default"),
		uid:            first(o.podUID, fromPod.UID, FakePodUID),
		serviceAccount: first(o.serviceAccount, fromPod.ServiceAccountName, tokAccount, DefaultServiceAccount),
	}
}

// mergeAttributes builds the Mount attributes as kubelet and the driver do.
// Kubelet's volume context is the volume's attributes with the pod-info
// attributes laid over them (the CSIDriver has podInfoOnMount); the driver
// lays the volume context over the class's parameters. The service account
// token attribute is added by the caller.
func mergeAttributes(parameters, volumeAttributes map[string]string, pod identity) map[string]string {
	volumeContext := maps.Clone(volumeAttributes)
	if volumeContext == nil {
		volumeContext = map[string]string{}
	}
	maps.Copy(volumeContext, map[string]string{
		config.AttrPodName:             pod.name,
		config.AttrPodNamespace:        pod.namespace,
		config.AttrPodUID:              pod.uid,
		config.AttrServiceAccountName:  pod.serviceAccount,
		"csi.storage.k8s.io/ephemeral": "true", // a pod's inline CSI volume
	})
	attrs := maps.Clone(parameters)
	if attrs == nil {
		attrs = map[string]string{}
	}
	maps.Copy(attrs, volumeContext)
	return attrs
}

// tokensAttribute renders csi.storage.k8s.io/serviceAccount.tokens as kubelet
// does: a JSON object of TokenRequest statuses by audience.
func tokensAttribute(audience, jwt string, exp time.Time) (string, error) {
	b, err := json.Marshal(map[string]authenticationv1.TokenRequestStatus{
		audience: {Token: jwt, ExpirationTimestamp: metav1.NewTime(exp)},
	})
	return string(b), err
}

// targetPath is the path kubelet gives the driver for the volume. The
// provider does not use it; the driver passes it along.
func targetPath(podUID, volume string) string {
	return filepath.Join("/var/lib/kubelet/pods", podUID, "volumes/kubernetes.io~csi", volume, "mount")
}

// maxTokenBytes bounds a token file; service account tokens are ~1 KiB.
const maxTokenBytes = 64 << 10

// readToken reads the JWT. Errors name the file, never its contents.
func readToken(path string, stdin io.Reader) (string, error) {
	b, err := readInput(path, stdin)
	if err != nil {
		return "", usagef("reading -token-file: %v", err)
	}
	if len(b) > maxTokenBytes {
		return "", usagef("-token-file %s holds %d bytes: not a service account token", displayName(path), len(b))
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", usagef("-token-file %s is empty", displayName(path))
	}
	return tok, nil
}

// jwtClaims are the claims of a service account token this command checks.
type jwtClaims struct {
	Exp *json.Number `json:"exp"`
	Aud audiences    `json:"aud"`
	Sub string       `json:"sub"`
}

// audiences is a JWT aud claim: a string or a list of them.
type audiences []string

func (a *audiences) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audiences{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("aud is neither a string nor a list of strings")
	}
	*a = many
	return nil
}

// inspectJWT decodes (without verifying: Vault does that) the claims of a
// compact JWT. Its errors never quote the token.
func inspectJWT(tok string) (*jwtClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT (want three base64url parts separated by dots, got %d part(s))", len(parts))
	}
	dec := func(part string) ([]byte, error) {
		return base64.RawURLEncoding.DecodeString(strings.TrimRight(part, "="))
	}
	if _, err := dec(parts[0]); err != nil {
		return nil, fmt.Errorf("not a JWT: its header is not base64url")
	}
	payload, err := dec(parts[1])
	if err != nil {
		return nil, fmt.Errorf("not a JWT: its payload is not base64url")
	}
	c := &jwtClaims{}
	if err := json.Unmarshal(payload, c); err != nil {
		return nil, fmt.Errorf("not a JWT: its payload is not a JSON object of claims")
	}
	return c, nil
}

// serviceAccount splits a Kubernetes service account token's subject,
// system:serviceaccount:NAMESPACE:NAME.
func (c *jwtClaims) serviceAccount() (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(c.Sub, saSubjectPrefix)
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	if !ok || namespace == "" || name == "" || strings.Contains(name, ":") {
		return "", "", false
	}
	return namespace, name, true
}

const saSubjectPrefix = "system:serviceaccount:"

// expiry is the token's exp, or an hour from now without one.
func (c *jwtClaims) expiry(now time.Time) time.Time {
	if c.Exp != nil {
		if n, err := c.Exp.Int64(); err == nil {
			return time.Unix(n, 0)
		}
		if f, err := c.Exp.Float64(); err == nil {
			return time.Unix(int64(f), 0)
		}
	}
	return now.Add(time.Hour)
}

// check returns what about the token will likely make Vault refuse it, or
// make the check differ from the pod's real mount.
func (c *jwtClaims) check(audience string, pod identity, now time.Time) []string {
	var notes []string
	if c.Exp != nil {
		if exp := c.expiry(now); !exp.After(now) {
			notes = append(notes, fmt.Sprintf("the token from -token-file expired at %s: Vault will refuse it", exp.UTC().Format(time.RFC3339)))
		}
	}
	if len(c.Aud) > 0 && !slices.Contains(c.Aud, audience) {
		notes = append(notes, fmt.Sprintf("the token from -token-file is for audience %q, but is passed as the token for audience %q (the audience parameter, default %q), as kubelet passes the token it requested for that audience", []string(c.Aud), audience, config.DefaultAudience))
	}
	if want := saSubjectPrefix + pod.namespace + ":" + pod.serviceAccount; strings.HasPrefix(c.Sub, saSubjectPrefix) && c.Sub != want {
		notes = append(notes, fmt.Sprintf("the token from -token-file is for %s, but the pod runs as %s: kubelet would send the pod's own token", c.Sub, want))
	}
	return notes
}

func displayName(path string) string {
	if path == "-" {
		return "(standard input)"
	}
	return path
}
