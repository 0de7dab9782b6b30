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
//
// A unix:// socket is a Vault address too (see config.Origin): a relative
// Location from one stays on that socket, and a Location naming a socket
// ("unix:///path") sends the request, path and query unchanged, over it.
// Redirects to or from a socket are followed only to the Mount's own
// addresses (config.MayRedirect); going from https to a socket on the node
// is not a downgrade on the wire, so only that rule applies.
func (c *Client) redirect(pol Policy, op string, req *api.Request, resp *api.Response) (*Client, error) {
	rawLoc := resp.Header.Get("Location")
	loc, err := resp.Location()
	resp.Body.Close()
	refuse := func(to, reason string) error {
		return &RedirectError{Op: op, From: c.addr, To: to, Reason: reason}
	}
	if err != nil {
		return nil, refuse("", "the answer's Location header is missing or not a URL")
	}
	fromUnix := config.IsUnix(c.addr)
	origin := config.Origin(loc.String())
	if fromUnix && relativeLocation(rawLoc) {
		// resp.Location resolved it against the client's http://localhost,
		// which names no server: it means this socket.
		origin = config.Origin(c.addr)
	}
	toUnix := config.IsUnix(origin)
	switch {
	case origin == "":
		return nil, refuse("", "the Location is not an http, https or unix:// URL")
	case req.URL.Scheme == "https" && loc.Scheme != "https" && !toUnix:
		return nil, refuse(origin, "it would go from https to http")
	case pol.Redirect == nil:
		return nil, refuse(origin, "redirects are not followed for this call")
	}
	tls, ok := pol.Redirect(c.addr, origin)
	if !ok {
		if fromUnix || toUnix {
			return nil, refuse(origin, "a redirect to or from a Unix socket (unix://) is followed only to an address this SecretProviderClass itself lists in vaultAddress; list it there")
		}
		return nil, refuse(origin, "it is neither an address of this SecretProviderClass (vaultAddress) nor one the provider's operator trusts (-vault-addr, "+config.FlagAllowedVaultAddresses+"); list it in vaultAddress or ask the operator to add it to "+config.FlagAllowedVaultAddresses)
	}
	next, err := c.pool.Client(Target{Address: origin, Namespace: c.ns, TLS: tls})
	if err != nil {
		return nil, err
	}
	// As the Vault client itself follows: same method, body, token and
	// query, at the new URL; plus the Host header and no user information
	// from the Location.
	var u url.URL
	if toUnix && !(fromUnix && relativeLocation(rawLoc)) {
		// The Location names only the socket.
		u = *req.URL
		u.Scheme, u.Host = "http", "localhost"
	} else {
		u = *loc
	}
	u.User = nil
	req.URL = &u
	req.Host = u.Host
	return next, nil
}

// relativeLocation reports whether a Location header names no scheme and
// no host: a path on the server that answered.
func relativeLocation(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "" && u.Host == ""
}

// locationOrigin is the origin of resp's Location, for messages.
func locationOrigin(resp *api.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return ""
	}
	if config.IsUnix(loc.String()) {
		return config.Origin(loc.String())
	}
	return config.Origin((&url.URL{Scheme: loc.Scheme, Host: loc.Host}).String())
}
