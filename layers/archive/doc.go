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
// A load that fails changes nothing: no names are added or moved, and the
// blobs it committed are removed again (blobs that were in the store before
// stay).
package archive
