package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// fetchWithFailover tries the Vault addresses in order: on a connection
// error or a 5xx (sealed, standby without forwarding, overloaded) the next
// one is tried, within the Mount's deadline; a 4xx is Vault's answer and
// final. Tokens and leases stay per address (the identity includes it).
func (p *Provider) fetchWithFailover(ctx context.Context, cfg *config.Config, reqs []config.Request) (map[string]*vault.Response, error) {
	logger := klog.FromContext(ctx)
	var lastErr error
	for i, addr := range cfg.VaultAddresses {
		answers, err := p.fetchFrom(ctx, addr, cfg, reqs)
		if err == nil {
			metrics.VaultAddressServed.WithLabelValues(position(i)).Inc()
			return answers, nil
		}
		if !failover(err) || ctx.Err() != nil {
			return nil, err
		}
		if i == len(cfg.VaultAddresses)-1 {
			if i == 0 {
				return nil, err
			}
			return nil, fmt.Errorf("all %d Vault addresses failed; the last: %w", len(cfg.VaultAddresses), err)
		}
		logger.Info("Vault address failed; trying the next one", "address", addr, "next", cfg.VaultAddresses[i+1], "err", err)
		lastErr = err
	}
	return nil, lastErr
}

// position is a bounded label for the address that served: pod authors
// choose addresses, so they cannot be label values.
func position(i int) string {
	if i > 3 {
		return "4+"
	}
	return strconv.Itoa(i)
}

// failover tells errors another Vault address may not have.
func failover(err error) bool {
	var ue *vault.UnreachableError
	if errors.As(err, &ue) {
		return true
	}
	var se *vault.StatusError
	return errors.As(err, &se) && se.StatusCode >= 500
}

// fetchFrom authenticates at the Vault address addr, one of
// cfg.VaultAddresses, and makes the object reads.
func (p *Provider) fetchFrom(ctx context.Context, addr string, cfg *config.Config, reqs []config.Request) (map[string]*vault.Response, error) {
	vc, err := p.Vault.Client(vault.Target{Address: addr, Namespace: cfg.VaultNamespace, TLS: cfg.TLSFor(addr)})
	if err != nil {
		return nil, err
	}
	id := cache.IdentityOf(cfg, addr)
	creds := p.Credentials
	var (
		tok        *vault.Token
		tokenStart time.Time // on the cache's clock
	)
	if creds != nil {
		tokenStart = creds.Now()
		tok, err = creds.Token(ctx, vc, id, cfg)
	} else {
		tok, err = p.Auth.Login(ctx, vc, cfg)
	}
	if err != nil {
		return nil, err
	}
	answers, err := p.fetch(ctx, vc, tok, id, cfg, reqs)
	if err != nil && creds != nil && forbidden(err) {
		// A cached token may have been revoked or expired early: then the
		// cache logs in again, once, and the reads are retried once.
		newTok, retry, rerr := creds.Refused(ctx, vc, id, cfg, tok, tokenStart)
		if rerr != nil {
			return nil, rerr
		}
		if retry {
			answers, err = p.fetch(ctx, vc, newTok, id, cfg, reqs)
		}
	}
	return answers, err
}

func forbidden(err error) bool {
	var se *vault.StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusForbidden
}

// fetch makes one Vault call per distinct request, at most FetchConcurrency
// at a time, and returns the answers by request key. Objects sharing a
// request share its answer: one database credential, not two.
func (p *Provider) fetch(ctx context.Context, vc *vault.Client, tok *vault.Token, id cache.Identity, cfg *config.Config, reqs []config.Request) (map[string]*vault.Response, error) {
	type job struct {
		req    config.Request
		object string // first object needing it, for messages
	}
	var jobs []job
	seen := make(map[string]bool, len(reqs))
	for i, r := range reqs {
		if cfg.Objects[i].IsTemplate() {
			continue
		}
		if k := r.Key(); !seen[k] {
			seen[k] = true
			jobs = append(jobs, job{req: r, object: cfg.Objects[i].ObjectName})
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	limit := p.FetchConcurrency
	if limit <= 0 {
		limit = DefaultFetchConcurrency
	}
	sem := make(chan struct{}, limit)
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		answers  = make(map[string]*vault.Response, len(jobs))
		firstErr error
	)
	for _, j := range jobs {
		wg.Add(1)
		fetchWorkers.Go(func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			resp, err := p.get(ctx, vc, tok, id, j.req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = &objectError{object: j.object, role: cfg.RoleName, err: err}
					cancel()
				}
				return
			}
			answers[j.req.Key()] = resp
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return answers, nil
}

func (p *Provider) get(ctx context.Context, vc *vault.Client, tok *vault.Token, id cache.Identity, r config.Request) (*vault.Response, error) {
	if p.Credentials == nil {
		return vc.Do(ctx, tok.Value, r)
	}
	resp, outcome, err := p.Credentials.Fetch(ctx, vc, tok, id, r)
	if err == nil && outcome != cache.Read {
		klog.FromContext(ctx).V(4).Info("Leased answer", "path", r.Path, "outcome", outcome)
	}
	return resp, err
}
