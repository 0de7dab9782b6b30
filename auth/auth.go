// Package auth obtains the pod's service account token and exchanges it for
// a Vault token at the kubernetes or jwt auth mount.
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// TokenRequestTTL is the lifetime of tokens the provider mints itself.
const TokenRequestTTL = 15 * time.Minute

// TokenError means no service account token could be had for the pod. Its
// message says what to configure.
type TokenError struct {
	msg string
	err error
}

func (e *TokenError) Error() string {
	if e.err == nil {
		return e.msg
	}
	return e.msg + ": " + e.err.Error()
}

func (e *TokenError) Unwrap() error { return e.err }

// PodAttributesError means the driver sent neither a service account token
// nor the pod attributes a TokenRequest needs: the Mount request itself is
// incomplete, unlike a TokenError, where the cluster's set-up is at fault.
type PodAttributesError struct{}

func (e *PodAttributesError) Error() string {
	return fmt.Sprintf("the driver sent no service account token and the pod attributes (%s, %s, %s, %s) are incomplete, so none can be requested", config.AttrPodName, config.AttrPodNamespace, config.AttrPodUID, config.AttrServiceAccountName)
}

// TokenRequester is the TokenRequest API.
type TokenRequester interface {
	CreateToken(ctx context.Context, namespace, serviceAccount string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error)
}

// Authenticator logs pods in to Vault.
type Authenticator struct {
	// Kube mints pod-bound tokens when the driver sent none; nil when the
	// provider runs without Kubernetes access.
	Kube TokenRequester
}

// ServiceAccountToken returns the JWT to present for the pod: the one the
// driver passed for the audience, else a pod-bound token from the
// TokenRequest API.
func (a *Authenticator) ServiceAccountToken(ctx context.Context, c *config.Config) (string, error) {
	if c.Token != "" {
		return c.Token, nil
	}
	if a.Kube == nil {
		return "", &TokenError{msg: fmt.Sprintf("the driver sent no service account token for audience %q and the provider has no Kubernetes access to request one: add `tokenRequests: [{audience: %q}]` to the secrets-store CSIDriver object", c.TokenAudience(), c.TokenAudience())}
	}
	p := c.Pod
	if p.Name == "" || p.Namespace == "" || p.UID == "" || p.ServiceAccountName == "" {
		return "", &PodAttributesError{}
	}
	ttl := int64(TokenRequestTTL / time.Second)
	req := &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &ttl,
			BoundObjectRef: &authenticationv1.BoundObjectReference{
				Kind:       "Pod",
				APIVersion: "v1",
				Name:       p.Name,
				UID:        types.UID(p.UID),
			},
		},
	}
	// Without an explicit audience the API server's default applies, which
	// is what Vault roles written for vault-csi-provider expect.
	if c.Audience != "" {
		req.Spec.Audiences = []string{c.Audience}
	}
	resp, err := a.Kube.CreateToken(ctx, p.Namespace, p.ServiceAccountName, req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return "", fmt.Errorf("requesting a token for service account %s/%s: %w", p.Namespace, p.ServiceAccountName, ctxErr)
		}
		hint := ""
		switch {
		case apierrors.IsForbidden(err):
			hint = " (the provider's service account needs RBAC `create` on serviceaccounts/token; or configure the CSIDriver's tokenRequests)"
		case apierrors.IsNotFound(err):
			hint = " (the service account or pod does not exist)"
		}
		return "", &TokenError{msg: fmt.Sprintf("requesting a token for service account %s/%s%s", p.Namespace, p.ServiceAccountName, hint), err: err}
	}
	return resp.Status.Token, nil
}

// LoginError is Vault refusing the login: the role, the service account or
// the token's audience does not match the Vault role's configuration.
type LoginError struct {
	Role  string
	Mount string
	Err   error
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("Vault refused login as role %q at auth/%s: %v (check that the role exists and is bound to this service account and namespace, and the token audience)", e.Role, e.Mount, e.Err)
}

func (e *LoginError) Unwrap() error { return e.Err }

// Login returns a Vault token for the pod described by c.
func (a *Authenticator) Login(ctx context.Context, vc *vault.Client, c *config.Config) (*vault.Token, error) {
	jwt, err := a.ServiceAccountToken(ctx, c)
	if err != nil {
		return nil, err
	}
	tok, err := vc.Login(ctx, c.AuthMountPath, c.RoleName, jwt)
	if err != nil {
		var se *vault.StatusError
		if errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 {
			return nil, &LoginError{Role: c.RoleName, Mount: c.AuthMountPath, Err: err}
		}
		return nil, err
	}
	return tok, nil
}
