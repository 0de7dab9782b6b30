package vault

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// StatusError is an HTTP error status from Vault.
type StatusError struct {
	Op         string // what was attempted, e.g. "GET secret/data/app"
	Addr       string
	StatusCode int
	Errors     []string
}

func (e *StatusError) Error() string {
	msg := strings.Join(cleanErrors(e.Errors), "; ")
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("%s at %s: Vault answered %d: %s", e.Op, redactAddr(e.Addr), e.StatusCode, msg)
}

// cleanErrors flattens Vault's multierror text ("1 error occurred:\n\t*
// permission denied\n\n") into one line per error.
func cleanErrors(errs []string) []string {
	var out []string
	for _, e := range errs {
		lines := strings.Split(e, "\n")
		if len(lines) > 1 && strings.HasSuffix(strings.TrimSpace(lines[0]), "occurred:") {
			lines = lines[1:]
		}
		for _, l := range lines {
			l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* "))
			if l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}

// Sealed reports whether Vault refused because it is sealed.
func (e *StatusError) Sealed() bool {
	if e.StatusCode != http.StatusServiceUnavailable {
		return false
	}
	for _, m := range e.Errors {
		if strings.Contains(strings.ToLower(m), "sealed") {
			return true
		}
	}
	return false
}

// UnreachableError is a failure to get any HTTP answer from Vault.
type UnreachableError struct {
	Op   string
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%s: cannot reach Vault at %s: %v", e.Op, redactAddr(e.Addr), e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// EmptyResponseError is a success status with no body to read a secret from.
type EmptyResponseError struct {
	Op         string
	StatusCode int
}

func (e *EmptyResponseError) Error() string {
	return fmt.Sprintf("%s: Vault answered %d with no data", e.Op, e.StatusCode)
}

// SettingsError means no client can be built from the TLS settings: a CA,
// client certificate or key file that is missing, unreadable or not PEM. The
// settings come from the SecretProviderClass or the provider's flags, not
// from Vault, so retrying or failing over cannot help.
type SettingsError struct {
	Addr string
	Err  error
}

func (e *SettingsError) Error() string {
	return fmt.Sprintf("Vault TLS settings for %s cannot be used: %v; check vaultCACertPath, vaultCADirectory and the client cert/key paths (they are read on the provider's node)", redactAddr(e.Addr), e.Err)
}

func (e *SettingsError) Unwrap() error { return e.Err }

// RedirectError is a redirect from Vault that was not followed: to an
// origin the Mount may not contact, from https to http, a second one, or
// one no policy allows (see Policy). The Mount's settings decide, so
// retrying cannot help.
type RedirectError struct {
	Op     string
	From   string // the address that redirected
	To     string // the origin it redirected to ("" if the Location was unusable)
	Reason string
}

func (e *RedirectError) Error() string {
	to := e.To
	if to == "" {
		to = "an unusable location"
	}
	return fmt.Sprintf("%s: Vault at %s redirected to %s, which is not followed: %s", e.Op, redactAddr(e.From), to, e.Reason)
}

// BudgetError means Vault's answers to one Mount add up to more than its
// budget (see Budget): reading stopped there.
type BudgetError struct {
	Limit int64
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("Vault's answers to this Mount add up to more than %s, the most the provider reads for one Mount (from -max-response-bytes); mount fewer or smaller objects, or split them across SecretProviderClasses", sizeString(e.Limit))
}

// redactAddr drops user information from a Vault address. config refuses
// such addresses; this keeps a password out of messages should one get
// through.
func redactAddr(addr string) string {
	u, err := url.Parse(addr)
	if err != nil {
		if strings.Contains(addr, "@") {
			return "(a Vault address not shown: it contains '@')"
		}
		return addr
	}
	if u.User == nil {
		return addr
	}
	u.User = nil
	return u.String()
}

// scrub drops the request URL that net/http puts in transport errors: for a
// GET it holds the query, which may carry secretArgs values.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
