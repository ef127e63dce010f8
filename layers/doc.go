// Package layers is the cluster-image format: the Kubefile (kubefile), layer
// tarballs (layer), the local content store (store), builds (build),
// registries (registry) and archives (archive). Nothing here knows of agents,
// raft, memberlist or NATS.
package layers
