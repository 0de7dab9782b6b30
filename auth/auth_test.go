package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

func podConfig() *config.Config {
	return &config.Config{
		RoleName: "app",
		Pod:      config.Pod{Name: "app-0", Namespace: "apps", UID: "uid-1", ServiceAccountName: "app"},
	}
}

// tokenReactor answers TokenRequests and records what was asked.
func tokenReactor(got *authenticationv1.TokenRequest, sa *string, err error) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		ca := a.(k8stesting.CreateAction)
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		if err != nil {
			return true, nil, err
		}
		tr := ca.GetObject().(*authenticationv1.TokenRequest)
		*got = *tr.DeepCopy()
		*sa = ca.GetNamespace() + "/" + a.(k8stesting.CreateActionImpl).Name
		out := tr.DeepCopy()
		out.Status.Token = "minted-token"
		return true, out, nil
	}
}

func TestDriverTokenWins(t *testing.T) {
	kube := fake.NewSimpleClientset()
	c := podConfig()
	c.Token = "driver-token"
	a := &Authenticator{Kube: fakeAPI{kube}}
	tok, err := a.ServiceAccountToken(context.Background(), c)
	if err != nil || tok != "driver-token" {
		t.Fatalf("got %q, %v", tok, err)
	}
	if n := len(kube.Actions()); n != 0 {
		t.Errorf("made %d API calls though the driver sent a token", n)
	}
}

func TestTokenRequestFallback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		audience string
		wantAuds []string
	}{
		{"default audience left to the API server", "", nil},
		{"explicit audience", "vault-prod", []string{"vault-prod"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fake.NewSimpleClientset()
			var got authenticationv1.TokenRequest
			var sa string
			kube.PrependReactor("create", "serviceaccounts", tokenReactor(&got, &sa, nil))
			c := podConfig()
			c.Audience = tc.audience
			tok, err := (&Authenticator{Kube: fakeAPI{kube}}).ServiceAccountToken(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if tok != "minted-token" {
				t.Errorf("token %q", tok)
			}
			if sa != "apps/app" {
				t.Errorf("requested for %q, want apps/app", sa)
			}
			ref := got.Spec.BoundObjectRef
			if ref == nil || ref.Kind != "Pod" || ref.Name != "app-0" || string(ref.UID) != "uid-1" {
				t.Errorf("token not bound to the pod: %+v", ref)
			}
			if got.Spec.ExpirationSeconds == nil || time.Duration(*got.Spec.ExpirationSeconds)*time.Second != TokenRequestTTL {
				t.Errorf("expiration %v, want %v", got.Spec.ExpirationSeconds, TokenRequestTTL)
			}
			if strings.Join(got.Spec.Audiences, ",") != strings.Join(tc.wantAuds, ",") {
				t.Errorf("audiences %v, want %v", got.Spec.Audiences, tc.wantAuds)
			}
		})
	}
}

func TestTokenRequestFailures(t *testing.T) {
	gr := schema.GroupResource{Resource: "serviceaccounts"}
	for _, tc := range []struct {
		name string
		kube bool
		pod  config.Pod
		err  error
		want string
		typ  string
	}{
		{"no kubernetes access", false, podConfig().Pod, nil, "tokenRequests", "token"},
		{"incomplete pod info", true, config.Pod{Name: "p"}, nil, "pod attributes", "pod"},
		{"forbidden", true, podConfig().Pod, apierrors.NewForbidden(gr, "app", errors.New("no")), "serviceaccounts/token", "token"},
		{"not found", true, podConfig().Pod, apierrors.NewNotFound(gr, "app"), "does not exist", "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Authenticator{}
			if tc.kube {
				kube := fake.NewSimpleClientset()
				var got authenticationv1.TokenRequest
				var sa string
				kube.PrependReactor("create", "serviceaccounts", tokenReactor(&got, &sa, tc.err))
				a.Kube = fakeAPI{kube}
			}
			c := podConfig()
			c.Pod = tc.pod
			_, err := a.ServiceAccountToken(context.Background(), c)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			// The two types map to different gRPC codes: each failure is
			// exactly one of them.
			var te *TokenError
			var pe *PodAttributesError
			isToken, isPod := errors.As(err, &te), errors.As(err, &pe)
			switch tc.typ {
			case "token":
				if !isToken || isPod {
					t.Errorf("error %T: TokenError %v, PodAttributesError %v; want only a TokenError", err, isToken, isPod)
				}
			case "pod":
				if !isPod || isToken {
					t.Errorf("error %T: TokenError %v, PodAttributesError %v; want only a PodAttributesError", err, isToken, isPod)
				}
			}
		})
	}
}

// fakeAPI serves the TokenRequest API from a fake clientset, so reactors
// see the calls kubeapi.Client would make.
type fakeAPI struct{ cs *fake.Clientset }

func (f fakeAPI) CreateToken(ctx context.Context, ns, sa string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	return f.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
}
