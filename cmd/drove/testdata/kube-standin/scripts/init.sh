#!/bin/sh
# sealer's host init script, run on every host before the runtime. Like a
# kube-installer's init-kube.sh it installs the image's Kubernetes tools
# on the host (into /usr/local/bin: the test gives every lab node a
# private one), so steps that run outside the image — kubeadm reset on
# delete — find them.
set -e
. "$ROOTFS/bin/standin-lib.sh"
install -m 0755 "$ROOTFS/bin/kubeadm" "$ROOTFS/bin/kubectl" "$ROOTFS/bin/kubelet" "$ROOTFS/bin/standin-lib.sh" /usr/local/bin/
printf 'STANDIN_LOG_DIR=%s\nHostIP=%s\n' "$STANDIN_LOG_DIR" "$HostIP" > /usr/local/bin/standin.env
standin_log "$(standin_now) $(standin_now) init.sh | $(standin_env)"
