#!/usr/bin/env bash
# Waits until every member of the cluster reports healthy (etcdctl
# endpoint health --cluster through this host's member), up to
# ETCD_HEALTH_TIMEOUT seconds (default 60), and prints the members. The
# image's CMDS runs it on master0 after every member was started.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/etcd-lib.sh"

export ETCDCTL_API=3
endpoint=$(envvar ETCD_ADVERTISE_CLIENT_URLS)
endpoint=${endpoint%%,*}
endpoint=${endpoint:-http://127.0.0.1:2379}
cluster=$(envvar ETCD_INITIAL_CLUSTER)
want=$(tr ',' '\n' <<<"$cluster" | grep -c .) || want=1
etcdctl() { "$root/bin/etcdctl" --endpoints "$endpoint" --dial-timeout 2s --command-timeout 5s "$@"; }

deadline=$((SECONDS + ${ETCD_HEALTH_TIMEOUT:-60}))
while :; do
	if out=$(etcdctl endpoint health --cluster 2>&1); then
		healthy=$(grep -c 'is healthy' <<<"$out") || healthy=0
		[ "$healthy" -ge "$want" ] && break
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "the etcd cluster is not healthy after ${ETCD_HEALTH_TIMEOUT:-60}s (want $want healthy members):" >&2
		echo "$out" >&2
		echo "look at each member's log: ${ETCD_DATA:-/var/lib/drove-etcd}/etcd-<IP>/etcd.log" >&2
		exit 1
	fi
	sleep 0.5
done
echo "$out"
etcdctl member list -w table
