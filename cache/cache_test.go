package cache

import (
	"context"
	"strings"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/vault"
)

func TestRevokeAll(t *testing.T) {
	tests := []struct {
		name       string
		pods       []string // identities holding a cached token and a lease
		preRevoked []string // whose tokens Vault already revoked (revoke-self then fails)
		wantN      int
		wantErr    string
	}{
		{name: "empty cache", wantN: 0},
		{name: "one token", pods: []string{"a"}, wantN: 1},
		{name: "every identity's token", pods: []string{"a", "b", "c"}, wantN: 3},
		{name: "a refused revocation is reported, the others still happen", pods: []string{"a", "b"}, preRevoked: []string{"a"}, wantN: 1, wantErr: "revoking vault-token(accessor=acc-v1-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{TokenCacheSize: 10})
			var evicted []string
			forget := h.c.tokens.onEvict
			h.c.tokens.onEvict = func(key string, tok *vault.Token) {
				evicted = append(evicted, tok.Value)
				forget(key, tok)
			}
			tokens := map[string]string{}
			for _, uid := range tt.pods {
				cfg := h.pod(uid)
				tok := h.token(cfg)
				tokens[uid] = tok.Value
				h.fetch(tok, idOf(cfg), dbReq("x"))
			}
			for _, uid := range tt.preRevoked {
				h.fv.revoke(tokens[uid])
			}

			n, err := h.c.RevokeAll(context.Background())
			if n != tt.wantN {
				t.Errorf("RevokeAll revoked %d tokens, want %d", n, tt.wantN)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("RevokeAll: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("RevokeAll error %v, want one containing %q", err, tt.wantErr)
			}
			asked := map[string]bool{}
			for _, r := range h.fv.requests("auth/token/revoke-self") {
				asked[r.Token] = true
			}
			for uid, val := range tokens {
				if !asked[val] {
					t.Errorf("pod %s's token was not revoked", uid)
				}
			}
			if len(evicted) != len(tokens) {
				t.Errorf("onEvict saw %d tokens, want %d", len(evicted), len(tokens))
			}
			if n := h.c.Leases(); n != 0 {
				t.Errorf("%d leases cached after RevokeAll, want none: they went with their tokens", n)
			}
			// The cache is empty: each identity logs in anew.
			logins := h.fv.loginCount()
			for uid, val := range tokens {
				if got := h.token(h.pod(uid)); got.Value == val {
					t.Errorf("pod %s got its revoked token back", uid)
				}
			}
			if got := h.fv.loginCount() - logins; got != len(tokens) {
				t.Errorf("%d logins after RevokeAll, want %d", got, len(tokens))
			}
		})
	}
}
