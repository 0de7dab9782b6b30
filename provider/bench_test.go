package provider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/auth"
	"github.com/vault-csi-provider/vault-csi-provider/cache"
	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/objversion"
	"github.com/vault-csi-provider/vault-csi-provider/vault"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// benchObjects is the class of make bench: 5 KV reads and one certificate.
const benchObjects = `
- {objectName: s0, secretPath: secret/data/bench/s0, secretKey: value}
- {objectName: s1, secretPath: secret/data/bench/s1, secretKey: value}
- {objectName: s2, secretPath: secret/data/bench/s2, secretKey: value}
- {objectName: s3, secretPath: secret/data/bench/s3, secretKey: value}
- {objectName: s4, secretPath: secret/data/bench/s4, secretKey: value}
- {objectName: tls/tls.crt, secretPath: pki/issue/bench, method: PUT, secretArgs: {common_name: app.bench.example, ttl: 24h}, secretKey: certificate}
`

func benchVault(b *testing.B) *vaulttest.Server {
	v := vaulttest.New(b)
	v.EnableAuth("kubernetes").Role("app", vaulttest.Role{JWTs: []string{podJWT}, TTL: time.Hour})
	for i := 0; i < 5; i++ {
		v.PutKV2(fmt.Sprintf("secret/data/bench/s%d", i), map[string]any{"value": fmt.Sprintf("value-%d", i)})
	}
	v.SetPKIRole("bench", vaulttest.PKIRole{})
	return v
}

// BenchmarkMountRotationPoll is one rotation poll of a pod whose token and
// certificate are cached: 5 KV reads from the fake Vault, rendered and
// versioned. The fake Vault runs in this process, so its share of the CPU
// and allocations is in the figures; BenchmarkDirectReads is that share.
// cpu-ns/op is the process's CPU (user+system) per Mount.
//
//	go test ./provider -run '^$' -bench MountRotationPoll -benchmem
func BenchmarkMountRotationPoll(b *testing.B) {
	v := benchVault(b)
	authn := &auth.Authenticator{}
	p := &Provider{
		Defaults:    config.Defaults{VaultAddress: v.URL(), AuthMountPath: "kubernetes"},
		Vault:       vault.NewPool(vault.Options{MaxRetries: 0}),
		Auth:        authn,
		Credentials: cache.New(authn, cache.Options{TokenCacheSize: 10}),
		Classes:     config.NewClasses(0, 0),
		Keys:        objversion.StaticKey([]byte("0123456789abcdef0123456789abcdef")),
	}
	req := mountRequest(b, benchObjects, true)
	ctx := context.Background()
	first, err := p.Mount(ctx, req)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		resp, err := p.Mount(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.ObjectVersion) != 6 || resp.ObjectVersion[5].Version != first.ObjectVersion[5].Version {
			b.Fatalf("versions %v, first %v", resp.ObjectVersion, first.ObjectVersion)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
	if n := v.Count(http.MethodPut, "pki/issue/bench"); n != 1 {
		b.Fatalf("%d certificates issued, want 1 (cached)", n)
	}
	if n := v.Count("", "auth/kubernetes/login"); n != 1 {
		b.Fatalf("%d logins, want 1 (cached)", n)
	}
}

// BenchmarkDirectReads is the fake Vault's share of
// BenchmarkMountRotationPoll: the same 5 KV reads, 4 at a time, over
// kept-alive connections, with the answers read but not decoded.
func BenchmarkDirectReads(b *testing.B) {
	v := vaulttest.New(b, vaulttest.AnyToken())
	for i := 0; i < 5; i++ {
		v.PutKV2(fmt.Sprintf("secret/data/bench/s%d", i), map[string]any{"value": fmt.Sprintf("value-%d", i)})
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	read := func(i int) error {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/secret/data/bench/s%d", v.URL(), i), nil)
		req.Header.Set("X-Vault-Token", "t")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make([]error, 5)
		sem := make(chan struct{}, 4)
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				errs[i] = read(i)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU this process used so far, user and system: on a
// shared machine a steadier measure than the wall clock of ns/op.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
