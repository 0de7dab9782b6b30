// Package provider implements the Mount pipeline of the Secrets Store CSI
// provider API: parse the request, authenticate as the pod, fetch from Vault,
// render the files, version them.
package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
	pb "sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

// MaxResponseBytes is the driver's default limit on a Mount response
// (--max-call-recv-msg-size, 4 MiB). Larger answers are refused here with a
// message naming the objects, instead of by gRPC with one naming nothing.
const MaxResponseBytes = 4 << 20

// secretSyncWarnBytes is the Kubernetes Secret size limit: above it, syncing
// the objects as a Secret will fail.
const secretSyncWarnBytes = 1 << 20

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
	Keys        objversion.KeySource
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
	cfg, err := config.Parse(req.GetAttributes(), req.GetSecrets(), req.GetPermission(), p.Defaults)
	if err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx).WithValues(
		"pod", klog.KRef(cfg.Pod.Namespace, cfg.Pod.Name),
		"role", cfg.RoleName,
		"vault", strings.Join(cfg.VaultAddresses, ","),
	)
	ctx = klog.NewContext(ctx, logger)

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
	logger.V(2).Info("Mounted objects", "objects", len(resp.Files), "bytes", total, "vaultCalls", len(answers), "took", time.Since(start))
	return resp, nil
}

// respond renders the objects from the answers and versions them: Vault
// objects first (their values feed the templates), then templates. The
// response lists the files of each written object in the class's order (an
// all-keys object's files sorted by key) and one version per written
// object; objects with writeFile: false add neither.
func (p *Provider) respond(ctx context.Context, cfg *config.Config, reqs []config.Request, answers map[string]*vault.Response, key []byte) (*pb.MountResponse, int, error) {
	objs := cfg.Objects
	files := make([][]file, len(objs))
	// values are what templates see, kept only when there is a template.
	var values map[string]any
	for i := range objs {
		if objs[i].IsTemplate() {
			values = make(map[string]any, len(objs))
			break
		}
	}
	for i := range objs {
		obj := &objs[i]
		if obj.IsTemplate() {
			continue
		}
		secret := answers[reqs[i].Key()].Secret
		if obj.IsAllKeys() {
			fs, err := renderAllKeys(obj, reqs[i].Path, secret)
			if err != nil {
				return nil, 0, err
			}
			if values != nil {
				m := make(map[string]string, len(fs))
				for _, f := range fs {
					m[f.key] = string(f.contents)
				}
				values[obj.ObjectName] = m
			}
			files[i] = fs
			continue
		}
		contents, err := render(obj, reqs[i].Path, secret)
		if err != nil {
			return nil, 0, err
		}
		if values != nil {
			values[obj.ObjectName] = string(contents)
		}
		files[i] = []file{{path: obj.ObjectName, contents: contents}}
	}
	for i := range objs {
		obj := &objs[i]
		if !obj.IsTemplate() {
			continue
		}
		contents, err := renderTemplate(ctx, obj, values, p.maxResponseBytes())
		if err != nil {
			return nil, 0, err
		}
		files[i] = []file{{path: obj.ObjectName, contents: contents}}
	}
	for i := range objs {
		if !objs[i].Written() {
			files[i] = nil
		}
	}
	if err := checkFiles(objs, files); err != nil {
		return nil, 0, err
	}

	resp := &pb.MountResponse{
		Files:         make([]*pb.File, 0, len(objs)),
		ObjectVersion: make([]*pb.ObjectVersion, 0, len(objs)),
	}
	total := 0
	for i := range objs {
		obj := &objs[i]
		if !obj.Written() {
			continue
		}
		var (
			version string
			err     error
		)
		if obj.IsAllKeys() {
			vf := make([]objversion.File, len(files[i]))
			for j, f := range files[i] {
				vf[j] = objversion.File{Name: f.key, Contents: f.contents}
			}
			version, err = objversion.VersionFiles(key, obj, vf)
		} else {
			version, err = objversion.Version(key, obj, files[i][0].contents)
		}
		if err != nil {
			return nil, 0, &internalError{err}
		}
		mode := int32(obj.Mode(cfg.DefaultMode))
		for _, f := range files[i] {
			total += len(f.contents)
			resp.Files = append(resp.Files, &pb.File{Path: f.path, Mode: mode, Contents: f.contents})
		}
		resp.ObjectVersion = append(resp.ObjectVersion, &pb.ObjectVersion{Id: obj.ObjectName, Version: version})
	}
	return resp, total, nil
}

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
	vc, err := p.Vault.Client(vault.Target{Address: addr, Namespace: cfg.VaultNamespace, TLS: cfg.TLS})
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
		go func() {
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
		}()
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

// maxResponseBytes is the driver's limit on a Mount response.
func (p *Provider) maxResponseBytes() int {
	if p.MaxResponseBytes > 0 {
		return p.MaxResponseBytes
	}
	return MaxResponseBytes
}

func (p *Provider) checkSize(ctx context.Context, resp *pb.MountResponse, total int) error {
	limit := p.maxResponseBytes()
	// Protobuf framing adds a few bytes per file on top of contents and
	// names; estimate generously rather than marshal the response twice.
	size := total
	for _, f := range resp.Files {
		size += len(f.Path) + 16
	}
	for _, v := range resp.ObjectVersion {
		size += len(v.Id) + len(v.Version) + 8
	}
	if size > limit {
		return status.Errorf(codes.ResourceExhausted, "the objects add up to %d bytes, over the driver's %d-byte gRPC limit (%s): mount fewer or smaller objects, or raise the driver's --max-call-recv-msg-size", size, limit, sizes(resp.Files))
	}
	if size > secretSyncWarnBytes {
		klog.FromContext(ctx).Info("Mount response is over 1 MiB: syncing these objects as a Kubernetes Secret will fail", "bytes", size)
	}
	return nil
}

func sizes(files []*pb.File) string {
	s := ""
	for i, f := range files {
		if i == 8 {
			s += fmt.Sprintf(", and %d more", len(files)-i)
			break
		}
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s=%d", f.Path, len(f.Contents))
	}
	return s
}
