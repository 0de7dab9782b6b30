// Package provider implements the Mount pipeline of the Secrets Store CSI
// provider API: parse the request, authenticate as the pod, fetch from Vault,
// render the files, version them.
package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/klog/v2"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// DefaultFetchConcurrency bounds the Vault calls one Mount makes at once.
const DefaultFetchConcurrency = 4

// Provider serves Mount.
type Provider struct {
	Defaults config.Defaults
	Vault    *vault.Pool
	Auth     *auth.Authenticator
	// Credentials caches Vault tokens and leased answers per pod identity;
	// nil logs in every Mount and reads Vault every time.
	Credentials *cache.Cache
	// Classes caches parsed objects parameters between Mounts; nil parses
	// every Mount's.
	Classes *config.Classes
	Keys    objversion.KeySource
	// FetchConcurrency bounds concurrent Vault calls in one Mount.
	FetchConcurrency int
	// MaxResponseBytes overrides MaxResponseBytes when set (for drivers run
	// with a larger --max-call-recv-msg-size).
	MaxResponseBytes int
}

// Mount implements the provider API's Mount.
func (p *Provider) Mount(ctx context.Context, req *pb.MountRequest) (*pb.MountResponse, error) {
	resp, err := p.mount(ctx, req)
	if err != nil {
		st := toStatus(ctx, err)
		return nil, st.Err()
	}
	return resp, nil
}

func (p *Provider) mount(ctx context.Context, req *pb.MountRequest) (*pb.MountResponse, error) {
	cfg, err := config.ParseCached(req.GetAttributes(), req.GetSecrets(), req.GetPermission(), p.Defaults, p.Classes)
	if err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx).WithValues(
		"pod", klog.KRef(cfg.Pod.Namespace, cfg.Pod.Name),
		"role", cfg.RoleName,
		"vault", strings.Join(cfg.VaultAddresses, ","),
	)
	ctx = klog.NewContext(ctx, logger)
	// Which addresses Vault may redirect this Mount to, with whose TLS, and
	// how many bytes of answers it may read in all.
	ctx = vault.WithPolicy(ctx, vault.MountPolicy(cfg, p.maxResponseBytes()))

	// Everything that can fail without Vault goes first: a Mount that fails
	// after issuing dynamic credentials would leak them. Template objects
	// make no Vault request (their zero Request is skipped by fetch).
	reqs := make([]config.Request, len(cfg.Objects))
	for i := range cfg.Objects {
		if cfg.Objects[i].IsTemplate() {
			continue
		}
		if reqs[i], err = cfg.Objects[i].Request(); err != nil {
			return nil, config.Errorf("object %q: %v", cfg.Objects[i].ObjectName, err)
		}
	}
	key, err := p.Keys.Key(ctx)
	if err != nil {
		return nil, &internalError{fmt.Errorf("object versions unavailable: %w", err)}
	}
	start := time.Now()
	answers, err := p.fetchWithFailover(ctx, cfg, reqs)
	if err != nil {
		return nil, err
	}

	resp, total, err := p.respond(ctx, cfg, reqs, answers, key)
	if err != nil {
		return nil, err
	}
	if err := p.checkSize(ctx, resp, total); err != nil {
		return nil, err
	}
	metrics.Objects.Add(float64(len(resp.Files)))
	// Guarded: the arguments would be built (and allocated) on every
	// Mount even when the level is off.
	if v := logger.V(2); v.Enabled() {
		v.Info("Mounted objects", "objects", len(resp.Files), "bytes", total, "vaultCalls", len(answers), "took", time.Since(start))
	}
	return resp, nil
}
