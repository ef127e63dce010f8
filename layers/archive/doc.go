// Package archive carries cluster images offline: Save writes images from the
// local store into one tar file, Load reads such a file back into a store.
//
// Two formats are written and read:
//
//   - oci-archive (the default): a tar of an OCI image layout (oci-layout,
//     blobs/sha256/<hex>, index.json), as skopeo's oci-archive: transport and
//     podman read and write it. index.json names each entry with
//     org.opencontainers.image.ref.name set to the full normalised name
//     (docker.io/library/x:v1) and io.containerd.image.name set likewise, so
//     skopeo (oci-archive:FILE:docker.io/library/x:v1), podman and containerd
//     find the same name. Multi-platform images are saved whole.
//   - docker-archive: the `docker save` format (manifest.json with Config,
//     RepoTags and Layers), written and read through go-containerregistry's
//     tarball package. It holds one platform per image and cannot carry zstd
//     layers (see Save).
//
// Load reads an OCI archive in one streaming pass, writing each blob straight
// into the store and verifying it against its name, so loading needs no more
// disk than the image itself. Docker archives need random access and are
// spooled to the store's temporary directory first unless Load is given an
// uncompressed *os.File (LoadFile does that). Input wrapped in gzip, zstd or
// bzip2 is decompressed on the fly.
//
// Names: an OCI entry is named by io.containerd.image.name, else by
// org.opencontainers.image.ref.name, normalised as the store does
// (app:v1 is docker.io/library/app:v1). A bare tag such as "v1", which
// skopeo oci-archive:FILE:v1 writes, loads as localhost/v1:latest, as podman
// loads it, or as BaseName:v1 when LoadOptions.BaseName is set. Docker
// RepoTags are normalised alike. An entry with no name is loaded, its blobs
// kept, and returned with an empty Name; the store lists only named images,
// so Prune removes it unless the caller names it (store.Tag with the
// returned descriptor).
//
// Docker archives carry no manifests: an image loaded from one gets a new
// docker-schema2 manifest (so a new digest), with its config and layer
// blobs unchanged when the layers were gzip-compressed, and plain layers
// gzip-compressed by go-containerregistry.
//
// A load that fails changes nothing: no names are added or moved, and the
// blobs it committed are removed again (blobs that were in the store before
// stay).
package archive
