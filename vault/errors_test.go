package vault

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCleanErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"multierror of one", []string{"1 error occurred:\n\t* permission denied\n\n"}, []string{"permission denied"}},
		{"multierror of two", []string{"2 errors occurred:\n\t* missing client token\n\t* permission denied\n\n"}, []string{"missing client token", "permission denied"}},
		{"plain", []string{"permission denied"}, []string{"permission denied"}},
		{"several plain", []string{"a", "b"}, []string{"a", "b"}},
		{"blank entries dropped", []string{"", "  ", "\n"}, nil},
		{"multiline without header kept", []string{"line one\nline two"}, []string{"line one", "line two"}},
		{"bullet without header", []string{"* x"}, []string{"x"}},
		{"nil", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cleanErrors(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("cleanErrors(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestStatusError(t *testing.T) {
	e := &StatusError{Op: "GET secret/data/app", Addr: "https://vault:8200", StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}}
	want := "GET secret/data/app at https://vault:8200: Vault answered 403: permission denied"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	e = &StatusError{Op: "GET x", Addr: "a", StatusCode: 502}
	if !strings.HasSuffix(e.Error(), "Vault answered 502: Bad Gateway") {
		t.Errorf("Error() without errors = %q", e.Error())
	}

	sealed := []struct {
		code int
		errs []string
		want bool
	}{
		{503, []string{"Vault is sealed"}, true},
		{503, []string{"1 error occurred:\n\t* Vault is Sealed\n\n"}, true},
		{503, []string{"standby node"}, false},
		{503, nil, false},
		{500, []string{"Vault is sealed"}, false},
		{400, []string{"sealed"}, false},
	}
	for _, tt := range sealed {
		e := &StatusError{StatusCode: tt.code, Errors: tt.errs}
		if got := e.Sealed(); got != tt.want {
			t.Errorf("Sealed(%d, %q) = %v, want %v", tt.code, tt.errs, got, tt.want)
		}
	}
}

// TestErrorsNeverShowUserinfo: config refuses addresses with user
// information; should one get through, no message shows it.
func TestErrorsNeverShowUserinfo(t *testing.T) {
	addr := "https://admin:hunter2@vault:8200"
	for _, err := range []error{
		&StatusError{Op: "GET x", Addr: addr, StatusCode: 403},
		&UnreachableError{Op: "GET x", Addr: addr, Err: errors.New("connection refused")},
		&SettingsError{Addr: addr, Err: errors.New("bad CA")},
		&RedirectError{Op: "GET x", From: addr, To: "https://other:8200", Reason: "r"},
		&StatusError{Op: "GET x", Addr: "https://admin:hunter2@vault:8200/%zz", StatusCode: 403},
	} {
		msg := err.Error()
		if strings.Contains(msg, "hunter2") || strings.Contains(msg, "admin") {
			t.Errorf("%T message %q shows the credentials", err, msg)
		}
	}
	if got := redactAddr(addr); got != "https://vault:8200" {
		t.Errorf("redactAddr = %q", got)
	}
	if got := redactAddr("https://vault:8200"); got != "https://vault:8200" {
		t.Errorf("redactAddr of a clean address = %q", got)
	}
}

func TestRedirectAndBudgetErrors(t *testing.T) {
	e := &RedirectError{Op: "GET secret/x", From: "http://tenant:8200", To: "https://internal:443", Reason: "it is not allowed"}
	if want := "GET secret/x: Vault at http://tenant:8200 redirected to https://internal:443, which is not followed: it is not allowed"; e.Error() != want {
		t.Errorf("RedirectError = %q, want %q", e.Error(), want)
	}
	b := &BudgetError{Limit: 7 << 20}
	if !strings.Contains(b.Error(), "more than 7 MiB") {
		t.Errorf("BudgetError = %q", b.Error())
	}
	if got := (&BudgetError{Limit: 1000}).Error(); !strings.Contains(got, "more than 1000 bytes") {
		t.Errorf("BudgetError = %q", got)
	}
}
