package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vault-csi-provider/vault-csi-provider/config"
	"github.com/vault-csi-provider/vault-csi-provider/internal/metrics"
)

// maxResponseBytes bounds what is read of one Vault response. The driver
// refuses Mount responses over 4 MiB anyway.
const maxResponseBytes = 8 << 20

// Response is a successful Vault response.
type Response struct {
	// Secret is the decoded body; numbers are json.Number so re-encoding
	// keeps them as Vault sent them.
	Secret *api.Secret
}

// Do performs r with token and decodes the answer.
func (c *Client) Do(ctx context.Context, token string, r config.Request) (*Response, error) {
	op := r.Method + " " + r.Path
	req := c.api.NewRequest(r.Method, "/v1/"+r.Path)
	req.ClientToken = token
	if len(r.Query) > 0 {
		req.Params = r.Query
	}
	if r.Body != nil {
		req.BodyBytes = r.Body
	}
	kind := "write"
	if r.Method == http.MethodGet {
		kind = "read"
	}
	resp, err := c.send(ctx, kind, op, req)
	var se *StatusError
	if errors.As(err, &se) {
		se.Errors = redact(se.Errors, requestValues(r))
	}
	return resp, err
}

// requestValues are the query values and body strings of r: what a pod
// author passed as secretArgs or in a ?query, which Vault's error texts
// quote ("common name X not allowed") and messages must not.
func requestValues(r config.Request) []string {
	var vals []string
	for _, vs := range r.Query {
		vals = append(vals, vs...)
	}
	if len(r.Body) > 0 {
		var body any
		if json.Unmarshal(r.Body, &body) == nil {
			var walk func(any)
			walk = func(v any) {
				switch t := v.(type) {
				case string:
					vals = append(vals, t)
				case map[string]any:
					for _, e := range t {
						walk(e)
					}
				case []any:
					for _, e := range t {
						walk(e)
					}
				}
			}
			walk(body)
		}
	}
	return vals
}

// redact replaces every value of 3 bytes or more in msgs; shorter ones are
// too common in prose to replace and too short to matter.
func redact(msgs, values []string) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		for _, v := range values {
			if len(v) >= 3 {
				m = strings.ReplaceAll(m, v, "<redacted>")
			}
		}
		out[i] = m
	}
	return out
}

// send performs req and decodes the answer. A redirect is followed, at
// most once, where the context's Policy allows (see redirect.go); the
// Policy's Budget bounds what is read.
func (c *Client) send(ctx context.Context, kind, op string, req *api.Request) (*Response, error) {
	pol := policyFrom(ctx)
	if err := pol.Budget.check(); err != nil {
		return nil, err
	}
	cur := c
	resp, err := cur.raw(ctx, kind, req)
	if err == nil && isRedirect(resp.StatusCode) {
		next, rerr := cur.redirect(pol, op, req, resp)
		if rerr != nil {
			return nil, rerr
		}
		cur = next
		resp, err = cur.raw(ctx, kind, req)
		if err == nil && isRedirect(resp.StatusCode) {
			resp.Body.Close()
			return nil, &RedirectError{Op: op, From: cur.addr, To: locationOrigin(resp), Reason: "only one redirect is followed"}
		}
	}
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, cur.failure(ctx, op, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, cur.failure(ctx, op, err)
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("%s: %w", op, errTooLarge)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &EmptyResponseError{Op: op, StatusCode: resp.StatusCode}
	}
	secret, err := parseSecret(body)
	if err != nil {
		return nil, fmt.Errorf("%s: Vault's answer is not JSON: %v", op, err)
	}
	if secret == nil {
		return nil, &EmptyResponseError{Op: op, StatusCode: resp.StatusCode}
	}
	return &Response{Secret: secret}, nil
}

// raw makes one request (with the Vault client's retries) and counts it.
// A 3xx comes back as a response with a nil error.
func (c *Client) raw(ctx context.Context, kind string, req *api.Request) (*api.Response, error) {
	start := time.Now()
	//lint:ignore SA1019 RawRequestWithContext is the one call that takes any method, query and body.
	resp, err := c.api.RawRequestWithContext(ctx, req)
	metrics.VaultDuration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	statusLabel := "error"
	if resp != nil {
		statusLabel = strconv.Itoa(resp.StatusCode)
	}
	metrics.VaultRequests.WithLabelValues(kind, statusLabel).Inc()
	return resp, err
}

// failure types an error of a request to c.
func (c *Client) failure(ctx context.Context, op string, err error) error {
	var (
		re *api.ResponseError
		be *BudgetError
	)
	switch {
	case errors.As(err, &be):
		return be
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("%s: %w", op, errTooLarge)
	case errors.As(err, &re):
		return &StatusError{Op: op, Addr: c.addr, StatusCode: re.StatusCode, Errors: re.Errors}
	case ctx.Err() != nil:
		return fmt.Errorf("%s at %s: %w", op, redactAddr(c.addr), ctx.Err())
	}
	return &UnreachableError{Op: op, Addr: c.addr, Err: scrub(err)}
}
