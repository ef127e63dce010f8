// Package registry talks to OCI distribution registries: it parses and
// normalises image references the way docker does, keeps registry
// credentials in a docker-compatible config.json, verifies them at login,
// and pushes, pulls and resolves images and indexes.
//
// Registries on a loopback address (127.0.0.0/8, ::1, localhost) are
// reached over plain HTTP without any flag, as docker does; Options.Insecure
// extends that to any registry and also skips TLS verification. Code that
// talks to registries itself (a pull-through mirror, a concurrent puller)
// gets the same rules from Options.Endpoint: the registry, its credential
// and transport, and ggcr options.
//
// Errors are classified into the sentinels ErrUnauthorized, ErrNotFound and
// ErrUnreachable, matched with errors.Is; the registry's own error stays
// reachable with errors.As (*transport.Error). Endpoint.Classify does the
// same for requests made elsewhere.
package registry
