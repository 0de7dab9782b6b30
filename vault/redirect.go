package vault

import (
	"net/http"
	"net/url"

	"github.com/hashicorp/vault/api"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

// A Vault standby answers clients with a 307 to its active node, so
// redirects must be followed for a class listing the nodes of an HA
// cluster. The Vault client's own following is off (DisableRedirects): it
// would follow anywhere with the same HTTP client, presenting the client
// certificate meant for the first address to whatever server the answer
// names — a tenant's server could point the provider, with the operator's
// certificate, at an internal mTLS service. Here a redirect is followed
// once, only where the context's Policy allows, with the client (and TLS
// settings) of the origin redirected to, and never from https to http.

func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirect decides on the redirect resp answers req with, closing resp's
// body. It returns the client to send req to, req now pointing at the
// Location, or a RedirectError.
func (c *Client) redirect(pol Policy, op string, req *api.Request, resp *api.Response) (*Client, error) {
	loc, err := resp.Location()
	resp.Body.Close()
	refuse := func(to, reason string) error {
		return &RedirectError{Op: op, From: c.addr, To: to, Reason: reason}
	}
	if err != nil {
		return nil, refuse("", "the answer's Location header is missing or not a URL")
	}
	origin := config.Origin(loc.String())
	switch {
	case origin == "":
		return nil, refuse("", "the Location is not an http or https URL")
	case req.URL.Scheme == "https" && loc.Scheme != "https":
		return nil, refuse(origin, "it would go from https to http")
	case pol.Redirect == nil:
		return nil, refuse(origin, "redirects are not followed for this call")
	}
	tls, ok := pol.Redirect(origin)
	if !ok {
		return nil, refuse(origin, "it is neither an address of this SecretProviderClass (vaultAddress) nor one the provider's operator trusts (-vault-addr, "+config.FlagAllowedVaultAddresses+"); list it in vaultAddress or ask the operator to add it to "+config.FlagAllowedVaultAddresses)
	}
	next, err := c.pool.Client(Target{Address: origin, Namespace: c.ns, TLS: tls})
	if err != nil {
		return nil, err
	}
	// As the Vault client itself follows: same method, body, token and
	// query, at the new URL; plus the Host header and no user information
	// from the Location.
	u := *loc
	u.User = nil
	req.URL = &u
	req.Host = u.Host
	return next, nil
}

// locationOrigin is the origin of resp's Location, for messages.
func locationOrigin(resp *api.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return ""
	}
	return config.Origin((&url.URL{Scheme: loc.Scheme, Host: loc.Host}).String())
}
