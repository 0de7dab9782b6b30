package vault

import (
	"context"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

// Policy is what the Vault calls made for one Mount may do beyond talking
// to the client's own address: follow a redirect, and read how much. It
// travels in the context (WithPolicy), so every call made for the Mount —
// login, reads, renewals — obeys it without each caller passing it on.
type Policy struct {
	// Redirect says whether a redirect from the address from to origin
	// ("scheme://host:port", or a unix:// socket address) may be followed
	// and with which TLS settings. Nil: redirects are not followed.
	Redirect func(from, origin string) (config.TLS, bool)
	// Budget bounds the bytes read of all the answers; nil: no bound
	// beyond each answer's own.
	Budget *Budget
}

type policyKey struct{}

// WithPolicy returns ctx carrying p for the Vault calls made with it.
func WithPolicy(ctx context.Context, p Policy) context.Context {
	return context.WithValue(ctx, policyKey{}, p)
}

// policyFrom is the policy ctx carries, or the zero Policy: no redirects,
// no budget.
func policyFrom(ctx context.Context) Policy {
	p, _ := ctx.Value(policyKey{}).(Policy)
	return p
}

// MountPolicy is the policy of a Mount parsed into cfg whose response may
// hold up to maxResponseBytes (the provider's -max-response-bytes):
//
//   - a redirect is followed only to an origin the Mount may contact (one
//     of its vaultAddress addresses, or one the operator trusts; to or from
//     a unix:// socket only one of its own addresses: cfg.MayRedirect),
//     with that origin's TLS settings (cfg.TLSFor): never the credentials
//     of the address that redirected;
//   - the answers may add up to MountBudget(maxResponseBytes).
func MountPolicy(cfg *config.Config, maxResponseBytes int) Policy {
	return Policy{
		Redirect: func(from, origin string) (config.TLS, bool) {
			if !cfg.MayRedirect(from, origin) {
				return config.TLS{}, false
			}
			return cfg.TLSFor(origin), true
		},
		Budget: NewBudget(MountBudget(maxResponseBytes)),
	}
}

// MountBudget is the bytes of Vault answers a Mount whose response may hold
// maxResponseBytes reads at most: half as much again, for values Vault holds
// base64-encoded (an object with encoding: base64), plus 1 MiB for Vault's
// JSON around them. A Mount reading more could not answer the driver anyway.
func MountBudget(maxResponseBytes int) int64 {
	return int64(maxResponseBytes)*3/2 + 1<<20
}
