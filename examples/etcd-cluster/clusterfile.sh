#!/usr/bin/env bash
# Prints this directory's Clusterfile for other hosts: one etcd member on
# each address given (an odd number: 1, 3, 5...).
# Usage: clusterfile.sh IP... ; env IMAGE (default etcd-cluster:v1) and
# ETCD_DATA (default /var/lib/drove-etcd) set the image and the members'
# directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
	echo "usage: $0 IP... (the hosts that each run an etcd member)" >&2
	exit 2
fi
for ip in "$@"; do
	if ! [[ $ip =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
		echo "$ip is not an IPv4 address: give the hosts' addresses, e.g. $0 10.0.0.11 10.0.0.12 10.0.0.13" >&2
		exit 2
	fi
done
ips=$(IFS=,; echo "$*" | sed 's/,/, /g')
members=$(IFS=';'; echo "$*")
sed -e "s|^\(    - ips:\).*|\1 [$ips]|" \
	-e "s|^\(    - EtcdMembers=\).*|\1$members|" \
	-e "s|^\(    - ETCD_DATA=\).*|\1${ETCD_DATA:-/var/lib/drove-etcd}|" \
	-e "s|^\(  image:\).*|\1 ${IMAGE:-etcd-cluster:v1}|" \
	"$here/Clusterfile"
