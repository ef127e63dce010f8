package media

import "fmt"

// MountPoint is where the media's user-data mounts them (and leaves them
// mounted: the agent serves the image from there).
const MountPoint = "/mnt/drove-media"

// userData is the cloud-init NoCloud user-data that mounts the media by
// label and runs install.sh from them. cloud-init mounts a NoCloud seed
// only while it reads it, so the script mounts the media itself.
func userData(label string) []byte {
	return fmt.Appendf(nil, `#cloud-config
# Written by drove media build: mounts these media (label %[1]s) at
# %[2]s, leaves them mounted (the agent serves the cluster
# image on them to its peers) and runs drove/install.sh from them.
runcmd:
  - [sh, -c, 'set -e; m=%[2]s; mkdir -p "$m"; mountpoint -q "$m" || mount -o ro LABEL=%[1]s "$m"; sh "$m/drove/install.sh"']
`, label, MountPoint)
}

// metaData is the NoCloud meta-data: an instance id, so cloud-init runs
// user-data once per machine.
func metaData(instanceID string) []byte {
	return fmt.Appendf(nil, "instance-id: %s\n", instanceID)
}
