// Package collect pulls container images from their registries into one OCI
// image layout directory, for the target platform(s) of a cluster image.
//
// The layout is what a cluster image carries at container-images/:
// oci-layout, index.json and blobs/sha256/<hex>. Each collected image has
// one index.json entry: the descriptor of the manifest or index exactly as
// the upstream registry serves it (same bytes, same digest), annotated with
// io.containerd.image.name (the full reference) and
// org.opencontainers.image.ref.name (its tag or digest). Of a multi-platform
// index only the target platforms' manifests, configs and layers are
// written; the index blob itself is kept unchanged so that containerd later
// reports the upstream digest. Docker schema2 media types are kept as they
// are.
//
// Blobs are content-addressed, written through a temporary file that is
// renamed into place once its digest and size are verified, and fetched at
// most once per Collect even when several images that share them are pulled
// in parallel. Blobs already present, or reported by Options.Have, are not
// fetched again, so collecting into the same directory twice transfers no
// blob bytes the second time.
//
// One image failing does not stop the others: Collect returns what it
// collected and a *MissingError listing every image that failed and why.
package collect
