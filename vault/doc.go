// Package vault is the provider's only door to Vault: it builds (and reuses,
// within a bound) HTTP clients per Vault address and TLS settings, logs in
// with a service account JWT, and performs the reads and writes objects ask
// for. Every SecretProviderClass parameter is a tenant's input, so the TLS
// files it names are read only when they are small regular files, redirects
// are followed only where the Mount's Policy allows (with the TLS settings of
// the origin redirected to), and a Mount's answers are read within its
// Budget. Errors are typed (StatusError, UnreachableError, EmptyResponseError,
// SettingsError, RedirectError, BudgetError) so callers can map them to gRPC
// codes without parsing strings, and never carry tokens, bodies or query
// values.
package vault
