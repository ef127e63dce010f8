// Package importer imports the container images of an OCI image layout
// (the container-images/ directory of a cluster image's rootfs) into
// containerd, so the kubelet finds them without pulling.
//
// It writes the blobs itself through containerd's content API rather
// than streaming a tar to containerd's import: containerd still verifies
// every blob against its digest on commit, but a bad blob fails only its
// own image, content already present is neither read nor sent again, and
// an index whose other platforms' manifests are absent from the layout
// imports cleanly. Each parent blob gets the garbage-collection labels
// (containerd.io/gc.ref.content.*) that containerd's pull and import set,
// all writes happen under one lease, and the image record's target is the
// layout's (upstream) digest. Unpacking uses containerd's own client, so
// the snapshots are the ones the CRI expects. It works with containerd
// 1.6 and later: the Transfer API is not used.
package importer
