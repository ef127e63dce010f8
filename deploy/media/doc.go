// Package media builds and checks drove's boot media: a USB stick image
// (raw: one FAT32 partition), an ISO 9660 image (Rock Ridge and Joliet) or
// a tar, all holding the same tree:
//
//	user-data, meta-data             cloud-init NoCloud seed: runs install.sh
//	drove/bin/drove-linux-<arch>     the drove binary per architecture
//	drove/image/                     the cluster image, an OCI image layout
//	drove/agent.yaml, drove/token    the agent's settings and cluster token
//	drove/install.sh                 installs and starts the agent
//	drove/MANIFEST.sha256            sha256 of every other file (sha256sum -c)
//
// Build stages the tree in a temporary directory beside the output, writes
// the image through github.com/diskfs/go-diskfs (ISO, FAT32) or archive/tar,
// and renames it into place. Verify reads any of the three back (detected by
// content) and checks every file against the manifest.
package media
