#!/usr/bin/env bash
# Makes the build context of the etcd-cluster image in DIR: this directory's
# Kubefile, etc/ and scripts/, and bin/etcd and bin/etcdctl copied from
# ETCD_BIN (default /usr/bin; Debian: apt-get install etcd-server
# etcd-client). Usage: prepare.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 1 ]; then
	echo "usage: $0 DIR (the build context to create)" >&2
	exit 2
fi
ctx=$1
bindir=${ETCD_BIN:-/usr/bin}
for b in etcd etcdctl; do
	if [ ! -x "$bindir/$b" ]; then
		echo "$bindir/$b is missing: install etcd (Debian: apt-get install etcd-server etcd-client) or point ETCD_BIN at a directory holding etcd and etcdctl" >&2
		exit 1
	fi
done
mkdir -p "$ctx/bin"
cp -p "$here/Kubefile" "$ctx/"
cp -Rp "$here/etc" "$here/scripts" "$ctx/"
cp -p "$bindir/etcd" "$bindir/etcdctl" "$ctx/bin/"
