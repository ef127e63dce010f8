// Package ocilayout reads the index.json of an OCI image layout, the form
// in which a cluster image carries its container images (container-images/:
// oci-layout, index.json, blobs/sha256/<hex>). Package collect writes such
// layouts; the node mirror serves them and the importer loads them into
// containerd. All of them read index.json through ReadIndex, so a layout one
// accepts the others read the same way, and each adds only the checks of
// its own use (the mirror drops entries it cannot serve, the importer
// refuses ambiguous names).
//
// Entries are named with the ImageNameAnnotation, as containerd's import
// and export do; RefNameAnnotation carries the tag or digest for tools
// (skopeo, umoci) that look images up by it.
package ocilayout
