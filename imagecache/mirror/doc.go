// Package mirror serves container images over the OCI distribution API and
// points container tools at those servers.
//
// Three parts live here:
//
//   - NewNode: each node's read-only registry mirror. It answers pulls by an
//     image's original name (docker.io/library/nginx:1.25,
//     registry.k8s.io/pause:3.9, …) from the OCI image layouts that cluster
//     images carry, and refuses any blob whose bytes do not match its digest.
//   - Recorder: the pull-through mirror that runs on loopback while a
//     Kubefile's RUN steps execute. It fetches from the upstream registry,
//     passes the bytes back unchanged, and records every image pulled so the
//     build can cache it.
//   - WriteHostsDir and WriteRegistriesConf: containerd hosts.toml files and a
//     containers-registries.conf that send pulls to a mirror.
//
// # Naming the upstream registry
//
// A mirror serves many registries on one address, so every request must say
// which registry it means. Both servers accept three styles:
//
//   - containerd's: /v2/library/nginx/manifests/1.25?ns=docker.io (containerd
//     adds ns=<registry> when a hosts.toml mirror is used);
//   - registries.conf's: the registry is the first path element,
//     /v2/docker.io/library/nginx/manifests/1.25. A port is written with "_"
//     instead of ":" (/v2/127.0.0.1_5000/team/app/…) because clients that
//     parse the mirror location as an image reference (skopeo, podman)
//     reject a ':' inside a repository path; a raw ':' is accepted too;
//   - plain: /v2/library/nginx/manifests/1.25 means Docker Hub.
//
// The node mirror also answers for the alias registry sea.hub:5000 (sealer's
// registry name): a repository path asked for under it matches that path in
// any registry, docker.io first.
package mirror
