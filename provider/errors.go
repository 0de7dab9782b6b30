package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/tmpl"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// objectError is a failed Vault call made for an object.
type objectError struct {
	object string
	role   string
	err    error
}

func (e *objectError) Error() string {
	msg := fmt.Sprintf("object %q: %v", e.object, e.err)
	var se *vault.StatusError
	if errors.As(e.err, &se) {
		switch se.StatusCode {
		case http.StatusForbidden:
			msg += fmt.Sprintf("; check that the policies of Vault role %q allow this path and method", e.role)
		case http.StatusNotFound:
			msg += "; check secretPath (KV v2 paths need the mount's data/ segment, e.g. secret/data/app)"
		}
	}
	return msg
}

func (e *objectError) Unwrap() error { return e.err }

// internalError is a fault of the provider itself, not of the request.
type internalError struct{ err error }

func (e *internalError) Error() string { return e.err.Error() }
func (e *internalError) Unwrap() error { return e.err }

// toStatus maps a pipeline error to the gRPC status the driver reports in
// the pod's events: the code says whose problem it is, the message what to
// fix.
func toStatus(ctx context.Context, err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		return st
	}
	msg := err.Error()
	var (
		se    *vault.StatusError
		ue    *vault.UnreachableError
		ee    *vault.EmptyResponseError
		sete  *vault.SettingsError
		rde   *vault.RedirectError
		bge   *vault.BudgetError
		le    *auth.LoginError
		te    *auth.TokenError
		pae   *auth.PodAttributesError
		ke    *KeyNotFoundError
		de    *DecodeError
		nk    *NoKeysError
		re    *RenderError
		intle *internalError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (ctx.Err() == context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded: "+msg)
	case errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled:
		return status.New(codes.Canceled, msg)
	case config.IsInputError(err):
		return status.New(codes.InvalidArgument, msg)
	case errors.As(err, &sete):
		// TLS files named by the SecretProviderClass or the flags.
		return status.New(codes.InvalidArgument, msg)
	case errors.As(err, &rde):
		// The Mount's addresses and the operator's allow-list decide which
		// redirects are followed: a settings problem to fix, not a Vault
		// outage to wait out (Unavailable would say "retry later").
		return status.New(codes.FailedPrecondition, msg)
	case errors.As(err, &bge):
		return status.New(codes.ResourceExhausted, msg)
	case errors.As(err, &pae):
		// The driver's request lacks the pod's identity.
		return status.New(codes.InvalidArgument, msg)
	case errors.As(err, &le):
		return status.New(codes.PermissionDenied, msg)
	case errors.As(err, &te):
		return status.New(codes.FailedPrecondition, msg)
	case errors.As(err, &ke):
		return status.New(codes.NotFound, msg)
	case errors.As(err, &de):
		return status.New(codes.InvalidArgument, msg)
	case errors.As(err, &nk):
		return status.New(codes.NotFound, msg)
	case errors.Is(err, tmpl.ErrLimit):
		return status.New(codes.ResourceExhausted, msg)
	case errors.As(err, &re):
		return status.New(codes.InvalidArgument, msg)
	case errors.As(err, &ue):
		return status.New(codes.Unavailable, msg)
	case errors.As(err, &ee):
		return status.New(codes.NotFound, msg+"; the path exists but holds nothing to read (a write-only endpoint, or a deleted secret version?)")
	case errors.As(err, &se):
		return status.New(codeForHTTP(se), msg)
	case errors.As(err, &intle):
		return status.New(codes.Internal, msg)
	default:
		return status.New(codes.Internal, msg)
	}
}

func codeForHTTP(se *vault.StatusError) codes.Code {
	switch c := se.StatusCode; {
	case se.Sealed():
		return codes.Unavailable
	case c == http.StatusForbidden || c == http.StatusUnauthorized:
		return codes.PermissionDenied
	case c == http.StatusNotFound:
		return codes.NotFound
	case c == http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case c == http.StatusBadRequest || c == http.StatusMethodNotAllowed || c == http.StatusUnsupportedMediaType:
		return codes.InvalidArgument
	case c == http.StatusPreconditionFailed:
		return codes.FailedPrecondition
	case c >= 500:
		return codes.Unavailable
	default:
		return codes.Unknown
	}
}
