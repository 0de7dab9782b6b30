package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func tokensJSON(t *testing.T, byAudience map[string]string) string {
	t.Helper()
	m := map[string]ServiceAccountToken{}
	for aud, tok := range byAudience {
		m[aud] = ServiceAccountToken{Token: tok}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		name      string
		audience  string // ParamAudience; empty for unset
		attrToks  string // AttrServiceAccountToks in the attributes
		secToks   string // AttrServiceAccountToks in the secrets
		wantToken string
		wantAud   string
		errSub    string
	}{
		{
			name:      "default audience from attributes",
			attrToks:  tokensJSON(t, map[string]string{"vault": "tok-attr", "other": "tok-other"}),
			wantToken: "tok-attr",
			wantAud:   DefaultAudience,
		},
		{
			name:      "default audience from secrets",
			secToks:   tokensJSON(t, map[string]string{"vault": "tok-sec"}),
			wantToken: "tok-sec",
			wantAud:   DefaultAudience,
		},
		{
			name:      "secrets win over attributes",
			attrToks:  tokensJSON(t, map[string]string{"vault": "tok-attr"}),
			secToks:   tokensJSON(t, map[string]string{"vault": "tok-sec"}),
			wantToken: "tok-sec",
			wantAud:   DefaultAudience,
		},
		{
			name:      "secrets without the audience fall back to attributes",
			attrToks:  tokensJSON(t, map[string]string{"vault": "tok-attr"}),
			secToks:   tokensJSON(t, map[string]string{"other": "tok-sec"}),
			wantToken: "tok-attr",
			wantAud:   DefaultAudience,
		},
		{
			name:      "custom audience from attributes",
			audience:  "custom",
			attrToks:  tokensJSON(t, map[string]string{"vault": "tok-vault", "custom": "tok-custom"}),
			wantToken: "tok-custom",
			wantAud:   "custom",
		},
		{
			name:      "custom audience from secrets",
			audience:  "custom",
			secToks:   tokensJSON(t, map[string]string{"vault": "tok-vault", "custom": "tok-custom"}),
			wantToken: "tok-custom",
			wantAud:   "custom",
		},
		{
			name:      "custom audience absent",
			audience:  "custom",
			attrToks:  tokensJSON(t, map[string]string{"vault": "tok-vault"}),
			wantToken: "",
			wantAud:   "custom",
		},
		{
			name:      "no tokens at all",
			wantToken: "",
			wantAud:   DefaultAudience,
		},
		{
			name:      "empty token for audience is skipped",
			attrToks:  `{"vault":{"token":""}}`,
			wantToken: "",
			wantAud:   DefaultAudience,
		},
		{
			name:     "malformed tokens in attributes",
			attrToks: `{"vault":`,
			errSub:   "in the attributes is not valid JSON",
		},
		{
			name:    "malformed tokens in secrets",
			secToks: `not json`,
			errSub:  "in the node publish secrets is not valid JSON",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			over := map[string]string{}
			if tt.audience != "" {
				over[ParamAudience] = tt.audience
			}
			if tt.attrToks != "" {
				over[AttrServiceAccountToks] = tt.attrToks
			}
			secrets := "null"
			if tt.secToks != "" {
				b, _ := json.Marshal(map[string]string{AttrServiceAccountToks: tt.secToks})
				secrets = string(b)
			}
			c, err := Parse(attrs(t, over), secrets, "420", testDefaults)
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("err = %v, want one containing %q", err, tt.errSub)
				}
				if !IsInputError(err) {
					t.Errorf("error %q is not an input error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Token != tt.wantToken {
				t.Errorf("Token = %q, want %q", c.Token, tt.wantToken)
			}
			if got := c.TokenAudience(); got != tt.wantAud {
				t.Errorf("TokenAudience() = %q, want %q", got, tt.wantAud)
			}
			if c.Audience != tt.audience {
				t.Errorf("Audience = %q, want %q", c.Audience, tt.audience)
			}
		})
	}
}
