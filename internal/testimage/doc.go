// Package testimage builds random container images for tests, with
// go-containerregistry, and pushes them to a registry.
//
// An image is described by a Spec: how many random layers of what size,
// the linux platform its config declares, and whether it has OCI or Docker
// schema 2 media types. Index puts one such image per architecture into an
// OCI index; IndexOf indexes images a test built itself. Every function
// takes the test and fails it on error.
package testimage
