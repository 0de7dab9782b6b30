// Package vault is the provider's only door to Vault: it builds (and reuses)
// HTTP clients per Vault address and TLS settings, logs in with a service
// account JWT, and performs the reads and writes objects ask for. Errors are
// typed (StatusError, UnreachableError, EmptyResponseError, SettingsError) so
// callers can map them to gRPC codes without parsing strings, and never carry
// tokens, bodies or query values.
package vault
