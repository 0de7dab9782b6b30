package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

func statusErr(code int, errs ...string) *vault.StatusError {
	return &vault.StatusError{Op: "GET secret/data/app", Addr: "https://vault:8200", StatusCode: code, Errors: errs}
}

func TestToStatus(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		want    codes.Code
		wantMsg []string
	}{
		{"config error", config.Errorf("parameter %q is required", "roleName"), codes.InvalidArgument, []string{"roleName"}},
		{"wrapped config error", fmt.Errorf("x: %w", config.Errorf("bad")), codes.InvalidArgument, nil},
		{"TLS settings error", &vault.SettingsError{Addr: "https://vault:8200", Err: errors.New("open /etc/ca.pem: no such file")}, codes.InvalidArgument, []string{"Vault TLS settings for https://vault:8200", "vaultCACertPath"}},
		{"wrapped TLS settings error", fmt.Errorf("all 2 Vault addresses failed; the last: %w", &vault.SettingsError{Addr: "a", Err: errors.New("bad PEM")}), codes.InvalidArgument, nil},
		{"pod attributes error", &auth.PodAttributesError{}, codes.InvalidArgument, []string{"pod attributes", config.AttrPodUID}},
		{"wrapped pod attributes error", fmt.Errorf("login: %w", &auth.PodAttributesError{}), codes.InvalidArgument, nil},
		{"login error", &auth.LoginError{Role: "app", Mount: "kubernetes", Err: statusErr(403, "permission denied")}, codes.PermissionDenied, []string{`role "app"`}},
		{"login error with 400 inside", &auth.LoginError{Role: "app", Mount: "kubernetes", Err: statusErr(400, "invalid role")}, codes.PermissionDenied, nil},
		{"token error", &auth.TokenError{}, codes.FailedPrecondition, nil},
		{"wrapped token error", fmt.Errorf("login: %w", &auth.TokenError{}), codes.FailedPrecondition, nil},
		{"403", statusErr(403, "permission denied"), codes.PermissionDenied, []string{"permission denied"}},
		{"401", statusErr(401), codes.PermissionDenied, nil},
		{"404", statusErr(404), codes.NotFound, nil},
		{"400", statusErr(400, "missing common_name"), codes.InvalidArgument, []string{"missing common_name"}},
		{"405", statusErr(405), codes.InvalidArgument, nil},
		{"412", statusErr(412), codes.FailedPrecondition, nil},
		{"429", statusErr(429), codes.ResourceExhausted, nil},
		{"500", statusErr(500, "internal error"), codes.Unavailable, nil},
		{"502", statusErr(502), codes.Unavailable, nil},
		{"503 sealed", statusErr(503, "Vault is sealed"), codes.Unavailable, []string{"Vault is sealed"}},
		{"418", statusErr(418), codes.Unknown, nil},
		{"403 for an object", &objectError{object: "db/pass", role: "app", err: statusErr(403, "permission denied")}, codes.PermissionDenied, []string{`object "db/pass"`, `Vault role "app"`}},
		{"404 for an object", &objectError{object: "f", role: "app", err: statusErr(404)}, codes.NotFound, []string{"data/ segment"}},
		{"unreachable", &vault.UnreachableError{Op: "GET x", Addr: "https://vault:8200", Err: errors.New("connection refused")}, codes.Unavailable, []string{"cannot reach Vault"}},
		{"unreachable for an object", &objectError{object: "f", role: "app", err: &vault.UnreachableError{Op: "GET x", Addr: "a", Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}}, codes.Unavailable, nil},
		{"redirect refused", &objectError{object: "f", role: "app", err: &vault.RedirectError{Op: "GET x", From: "http://tenant:8200", To: "https://internal:443", Reason: "it is neither ...; ask the operator to add it to -allowed-vault-addresses"}}, codes.FailedPrecondition, []string{`object "f"`, "redirected to https://internal:443", "-allowed-vault-addresses"}},
		{"wrapped redirect refused", fmt.Errorf("all 2 Vault addresses failed; the last: %w", &vault.RedirectError{Op: "GET x", From: "a", To: "b"}), codes.FailedPrecondition, nil},
		{"budget spent", &objectError{object: "f", role: "app", err: &vault.BudgetError{Limit: 7 << 20}}, codes.ResourceExhausted, []string{`object "f"`, "more than 7 MiB"}},
		{"empty response", &vault.EmptyResponseError{Op: "GET x", StatusCode: 204}, codes.NotFound, []string{"holds nothing to read"}},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, nil},
		{"wrapped deadline", fmt.Errorf("GET x at a: %w", context.DeadlineExceeded), codes.DeadlineExceeded, []string{"GET x"}},
		{"canceled", fmt.Errorf("GET x: %w", context.Canceled), codes.Canceled, nil},
		{"key not found", &KeyNotFoundError{Object: "f", Path: "p", Key: "k"}, codes.NotFound, []string{`key "k"`}},
		{"decode error", &DecodeError{Object: "f", Encoding: "hex", Err: errors.New("odd")}, codes.InvalidArgument, nil},
		{"internal", &internalError{errors.New("boom")}, codes.Internal, []string{"boom"}},
		{"unknown", errors.New("something odd"), codes.Internal, []string{"something odd"}},
		{"existing status keeps its code", status.Error(codes.ResourceExhausted, "too big"), codes.ResourceExhausted, []string{"too big"}},
		{"existing status Aborted", status.Error(codes.Aborted, "x"), codes.Aborted, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := toStatus(context.Background(), tt.err)
			if st.Code() != tt.want {
				t.Errorf("code = %v, want %v (message %q)", st.Code(), tt.want, st.Message())
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(st.Message(), w) {
					t.Errorf("message %q does not contain %q", st.Message(), w)
				}
			}
		})
	}
}

func TestToStatusFromContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	if got := toStatus(ctx, errors.New("some transport error")).Code(); got != codes.DeadlineExceeded {
		t.Errorf("error after the deadline: code = %v, want DeadlineExceeded", got)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if got := toStatus(cctx, errors.New("some transport error")).Code(); got != codes.Canceled {
		t.Errorf("error after cancel: code = %v, want Canceled", got)
	}
}

func TestObjectErrorUnwraps(t *testing.T) {
	inner := statusErr(403)
	err := &objectError{object: "f", role: "r", err: inner}
	var se *vault.StatusError
	if !errors.As(err, &se) || se != inner {
		t.Fatal("objectError does not unwrap to its StatusError")
	}
	// Other codes get no hint.
	err = &objectError{object: "f", role: "r", err: statusErr(500)}
	if strings.Contains(err.Error(), "check") {
		t.Errorf("500 got a hint: %q", err)
	}
}

// noTokenRequests fails the test if a TokenRequest is made.
type noTokenRequests struct{ t *testing.T }

func (n noTokenRequests) CreateToken(context.Context, string, string, *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	n.t.Error("TokenRequest made for a pod with incomplete attributes")
	return nil, errors.New("unexpected TokenRequest")
}

// The errors vault and auth return for wrong input, as they return them,
// keep the code they had as config errors: InvalidArgument.
func TestToStatusOfStageInputErrors(t *testing.T) {
	_, err := vault.NewPool(vault.Options{}).Client(vault.Target{Address: "https://vault:8200", TLS: config.TLS{CACert: "/nonexistent/ca.pem"}})
	if err == nil {
		t.Fatal("a client was built with a missing CA file")
	}
	if st := toStatus(context.Background(), err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "/nonexistent/ca.pem") {
		t.Errorf("missing CA file: %v %q, want InvalidArgument naming the file", st.Code(), st.Message())
	}

	a := &auth.Authenticator{Kube: noTokenRequests{t}}
	_, err = a.ServiceAccountToken(context.Background(), &config.Config{RoleName: "app", Pod: config.Pod{Name: "p"}})
	if err == nil {
		t.Fatal("a token was had for a pod with incomplete attributes")
	}
	if st := toStatus(context.Background(), err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "pod attributes") {
		t.Errorf("incomplete pod attributes: %v %q, want InvalidArgument", st.Code(), st.Message())
	}
}
