// Package imagecache will handle the container images inside cluster images:
// collecting them at build time, storing them as layers, serving them from
// each node's mirror and importing them into containerd. It knows nothing of
// agents or raft.
package imagecache
