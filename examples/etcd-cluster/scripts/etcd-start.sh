#!/usr/bin/env bash
# Starts this host's etcd member, detached from the caller, as a member of
# the initial cluster rendered into etc/etcd.env. The Clusterfile's
# post-init-host hook runs it on every master, one host after another, so
# it does not wait for the cluster to be healthy (that needs a quorum of
# started members; scripts/etcd-health.sh waits for it). It waits only
# until the member listens for its peers. Idempotent: a member that is
# already running is left alone; a stopped one restarts on its data.
#
# Env: HostIP (set by drove), ETCD_DATA (the members' directory, default
# /var/lib/drove-etcd), ETCD_START_TIMEOUT (seconds, default 30).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/etcd-lib.sh"

if [ ! -f "$envfile" ]; then
	echo "$envfile is missing: drove renders it from etc/etcd.env.tmpl before the hooks run (is this the image's rootfs?)" >&2
	exit 1
fi
for key in ETCD_NAME ETCD_LISTEN_PEER_URLS ETCD_INITIAL_ADVERTISE_PEER_URLS ETCD_INITIAL_CLUSTER ETCD_INITIAL_CLUSTER_TOKEN; do
	v=$(envvar "$key")
	if [ -z "$v" ] || [[ $v == *"<no value>"* ]]; then
		echo "$envfile: $key is empty or unrendered ($v): set HostIP, EtcdMembers and EtcdClusterToken in the Clusterfile's env" >&2
		exit 1
	fi
done
cluster=$(envvar ETCD_INITIAL_CLUSTER)
if [[ $cluster == *[\;\ ]* ]] || [[ ,$cluster, != *",$name=http"* ]]; then
	echo "$envfile: ETCD_INITIAL_CLUSTER=$cluster does not list this member ($name) as name=peer-URL pairs joined with ','" >&2
	echo "give every member's address in the Clusterfile's env as a list, EtcdMembers=IP1;IP2;IP3, including ${HostIP:-this host}" >&2
	exit 1
fi

if pid=$(running); then
	echo "etcd member $name is already running (pid $pid)"
	exit 0
fi

mkdir -p "$dir"
chmod 700 "$dir"
echo "starting etcd member $name of $cluster (data and log in $dir)"
# A subshell with only etcd.env's ETCD_* settings for etcd: the caller's
# (ETCD_DATA, ETCD_START_TIMEOUT...) are not etcd's, and it would warn about
# them. setsid puts etcd in a session of its own,
# so it outlives the hook; its output goes to the log so that the hook's
# output closes when the script ends. setsid execs in place here (the
# background subshell never leads its process group), so $! is etcd's pid.
(
	for v in $(compgen -e | grep '^ETCD_' || true); do unset "$v"; done
	set -a
	. "$envfile"
	set +a
	export ETCD_DATA_DIR=$dir/data
	exec setsid "$root/bin/etcd"
) >>"$dir/etcd.log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pidfile"
# One line per start, for whoever wonders how often the hook ran.
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) started pid $pid" >>"$dir/starts"

peer=$(envvar ETCD_LISTEN_PEER_URLS)
peer=${peer#http://}
peer=${peer%%,*}
deadline=$((SECONDS + ${ETCD_START_TIMEOUT:-30}))
until (exec 3<>"/dev/tcp/${peer%:*}/${peer##*:}") 2>/dev/null; do
	if ! alive "$pid"; then
		echo "etcd member $name exited at start; the end of $dir/etcd.log:" >&2
		tail -n 20 "$dir/etcd.log" >&2
		exit 1
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "etcd member $name (pid $pid) does not listen on $peer after ${ETCD_START_TIMEOUT:-30}s; see $dir/etcd.log" >&2
		exit 1
	fi
	sleep 0.2
done
echo "etcd member $name is running (pid $pid), listening for peers on $peer"
