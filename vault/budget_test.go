package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// bigAnswer is a KV answer of just under maxResponseBytes: each is
// acceptable alone.
func bigAnswer() []byte {
	prefix, suffix := `{"data":{"k":"`, `"}}`
	return []byte(prefix + strings.Repeat("a", maxResponseBytes-1024-len(prefix)-len(suffix)) + suffix)
}

// TestBudgetBoundsAMount: 24 objects whose answers are 8 MiB each, read 4
// at a time as the provider does, with a 5 MiB budget: every read fails
// with a BudgetError, and the Mount never holds much more than the budget.
func TestBudgetBoundsAMount(t *testing.T) {
	body := bigAnswer()
	v := vaulttest.New(t)
	v.Handle("big/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	c := newClient(t, Options{MaxRetries: 0}, Target{Address: v.URL()})

	// Alone, without a budget, one answer is read whole.
	if resp, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "big/0"}); err != nil || len(resp.Secret.Data["k"].(string)) < 7<<20 {
		t.Fatalf("one answer without a budget: %v", err)
	}

	const budget = 5 << 20
	b := NewBudget(budget)
	ctx := WithPolicy(context.Background(), Policy{Budget: b})
	before := totalAlloc()
	calls := len(v.Calls())
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 4)
		mu   sync.Mutex
		errs []error
	)
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := c.Do(ctx, "t", config.Request{Method: "GET", Path: fmt.Sprintf("big/%d", i)})
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	grew := totalAlloc() - before
	for _, err := range errs {
		var be *BudgetError
		if !errors.As(err, &be) || be.Limit != budget {
			t.Fatalf("err = %v (%T), want a *BudgetError of %d", err, err, budget)
		}
	}
	if grew > 64<<20 {
		t.Errorf("24 answers of 8 MiB with a 5 MiB budget allocated %d MiB", grew>>20)
	}
	// Concurrent reads may each pass the last check: some overshoot, not much.
	if used := b.Used(); used > 2*budget {
		t.Errorf("read %d bytes with a budget of %d", used, budget)
	}
	// Once the budget is spent, calls are not even sent.
	if sent := len(v.Calls()) - calls; sent > 8 {
		t.Errorf("%d of 24 requests sent; after the budget ran out none should be", sent)
	}
	msg := errs[0].Error()
	for _, want := range []string{"more than 5 MiB", "-max-response-bytes", "mount fewer or smaller objects"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
	}
}

// TestBudgetCountsErrorBodies: the bodies of error answers, which the
// Vault client reads itself, count too, and stop at maxResponseBytes.
func TestBudgetCountsErrorBodies(t *testing.T) {
	chunk := []byte(strings.Repeat("x", 1<<20))
	v := vaulttest.New(t)
	v.Handle("secret/x", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		for range 32 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	c := newClient(t, Options{MaxRetries: 0}, Target{Address: v.URL()})

	before := totalAlloc()
	_, err := c.Do(context.Background(), "t", getX)
	if err == nil || len(err.Error()) > 1000 || !strings.Contains(err.Error(), "GET secret/x: Vault's answer is larger than 8 MiB") {
		t.Errorf("32 MiB error body: err = %.200q, want the answer refused as too large", err)
	}
	// Read whole, it costs over 400 MiB; stopped at 8 MiB, about 32.
	if grew := totalAlloc() - before; grew > 128<<20 {
		t.Errorf("a 32 MiB error body allocated %d MiB", grew>>20)
	}

	b := NewBudget(2 << 20)
	_, err = c.Do(WithPolicy(context.Background(), Policy{Budget: b}), "t", getX)
	var be *BudgetError
	if !errors.As(err, &be) {
		t.Errorf("error body over the budget: err = %v (%T), want a *BudgetError", err, err)
	}
}

func TestBudgetChargesEveryCall(t *testing.T) {
	v := vaulttest.New(t, vaulttest.AnyToken())
	v.PutKV("secret/x", map[string]any{"k": strings.Repeat("v", 1000)})
	c := newClient(t, Options{}, Target{Address: v.URL()})
	b := NewBudget(10_000)
	ctx := WithPolicy(context.Background(), Policy{Budget: b})
	n := 0
	for ; n < 100; n++ {
		if _, err := c.Do(ctx, "t", getX); err != nil {
			var be *BudgetError
			if !errors.As(err, &be) {
				t.Fatalf("call %d: %v", n, err)
			}
			break
		}
	}
	if n < 5 || n > 10 {
		t.Errorf("%d reads of about 1 KiB fit a 10,000-byte budget", n)
	}
}

func TestMountBudget(t *testing.T) {
	if got := MountBudget(4 << 20); got != 7<<20 {
		t.Errorf("MountBudget(4 MiB) = %d, want 7 MiB", got)
	}
	cfg := parse(t, config.Defaults{VaultAddress: "https://v:8200"}, nil)
	if p := MountPolicy(cfg, 4<<20); p.Budget == nil || p.Budget.limit != 7<<20 || p.Redirect == nil {
		t.Errorf("MountPolicy = %+v", p)
	}
}
