// Package render prepares an unpacked cluster image's root filesystem for
// a node, as sealer does before it distributes the rootfs: it renders the
// *.tmpl files under etc/, charts/ and manifests/ with the cluster env
// (RenderTree), then applies the Clusterfile's Config documents — file
// overwrites, YAML deep merges and the value|toJson|toBase64|toSecret
// processors (ApplyConfigs). Rootfs does both, all-or-nothing.
//
// Env holds sealer's env (image ENV < cluster env < host env < CLI, merged
// with Merge; computed keys from Derive). MergeDocuments and MergeYAML are
// the multi-document YAML deep merge that Configs and kubeadm overlays use.
//
// The package reads and writes only beneath the rootfs it is given (via
// os.Root), replaces files atomically, and prints nothing.
package render
