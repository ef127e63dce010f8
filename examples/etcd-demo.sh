#!/usr/bin/env bash
# drove's main job, end to end: build a cluster image holding etcd, start
# three machines (a lab: agents in their own network namespaces on this
# host), and install a real 3-member etcd cluster on them with
# `drove apply -f Clusterfile`. Then ask etcd itself: every member healthy,
# a key written through the first member read through the third. A second
# apply of the same Clusterfile does nothing, and `drove delete --all`
# removes the cluster. The lab is torn down at the end (DEMO_KEEP=1 keeps
# the lab and etcd running to play with).
#
# Needs root (network namespaces) and Debian's etcd-server and etcd-client
# (installed here with apt-get when missing). Usage: examples/etcd-demo.sh [DROVE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
drove=$(realpath "${1:-$here/../bin/drove}")
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
d() { echo "+ drove $*" >&2; "$drove" "$@"; }

if [ "$(id -u)" != 0 ]; then
	echo "the etcd demo runs its machines in network namespaces: run it as root (sudo $0 ${1:-})" >&2
	exit 1
fi
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
	if command -v apt-get >/dev/null; then
		echo "installing etcd-server and etcd-client (Debian's etcd)"
		apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null
	fi
	if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
		echo "etcd and etcdctl are needed: install them (Debian: apt-get install etcd-server etcd-client)" >&2
		exit 1
	fi
fi
etcd_bin=$(dirname "$(command -v etcd)")

work=${DEMO_DIR:-$(mktemp -d /tmp/drove-etcd-demo.XXXXXX)}
mkdir -p "$work"
export DROVE_DATA_DIR=$work/client
export ETCDCTL_API=3
etcd_data=$work/etcd # each member keeps its data and log in etcd_data/etcd-<its address>
ips=()

# teardown stops the etcd members (they run detached from the agents) and
# the lab, unless DEMO_KEEP is set.
teardown() {
	if [ -n "${DEMO_KEEP:-}" ]; then
		echo "kept: the lab (drove lab down --dir $work/lab) and etcd (see $etcd_data)"
		return
	fi
	for ip in "${ips[@]}"; do
		ETCD_DATA=$etcd_data HostIP=$ip bash "$work/context/scripts/etcd-stop.sh" >/dev/null 2>&1 || true
	done
	"$drove" lab down --dir "$work/lab" >/dev/null 2>&1 || true
}
trap teardown EXIT

step "build the etcd-cluster image: etcd and etcdctl from $etcd_bin, start and health scripts, a template"
ETCD_BIN=$etcd_bin "$here/etcd-cluster/prepare.sh" "$work/context"
d build -t etcd-cluster:v1 "$work/context"

step "three machines: a lab of agents in network namespaces (raft, NATS, gossip)"
d lab up --netns --masters 3 --nodes 0 --dir "$work/lab"
mapfile -t ips < <(sed -n 's/^ *"addr": "\([^"]*\)".*/\1/p' "$work/lab/lab.json")
if [ "${#ips[@]}" -ne 3 ]; then
	echo "expected 3 lab nodes in $work/lab/lab.json, found ${#ips[@]}" >&2
	exit 1
fi

step "the Clusterfile: one etcd member on each of ${ips[*]}"
ETCD_DATA=$etcd_data "$here/etcd-cluster/clusterfile.sh" "${ips[@]}" >"$work/Clusterfile"
cat "$work/Clusterfile"

step "apply it: deliver the image, render etc/etcd.env per host, start the members, wait for health"
d apply -f "$work/Clusterfile"

endpoints=$(printf 'http://%s:2379,' "${ips[@]}")
endpoints=${endpoints%,}
step "ask etcd: every member healthy?"
echo "+ etcdctl --endpoints http://${ips[0]}:2379 endpoint health --cluster"
etcdctl --endpoints "http://${ips[0]}:2379" endpoint health --cluster
etcdctl --endpoints "$endpoints" endpoint status -w table

step "write through the first member, read through the third"
echo "+ etcdctl --endpoints http://${ips[0]}:2379 put greeting 'hello from drove'"
etcdctl --endpoints "http://${ips[0]}:2379" put greeting "hello from drove"
echo "+ etcdctl --endpoints http://${ips[2]}:2379 get greeting"
got=$(etcdctl --endpoints "http://${ips[2]}:2379" get greeting --print-value-only)
echo "$got"
[ "$got" = "hello from drove" ] || { echo "read back \"$got\" through ${ips[2]}, wrote \"hello from drove\"" >&2; exit 1; }

step "apply the same Clusterfile again: nothing to do"
d apply -f "$work/Clusterfile"
for ip in "${ips[@]}"; do
	echo "member etcd-$ip started $(grep -c . "$etcd_data/etcd-$ip/starts") time(s)"
done

if [ -n "${DEMO_KEEP:-}" ]; then
	step "done: an etcd cluster of ${#ips[@]} members, installed by drove (state in $work)"
	exit 0
fi
step "take it down: drove delete runs the image's scripts/clean.sh on every host"
d delete --all --force
for ip in "${ips[@]}"; do
	[ -d "$etcd_data/etcd-$ip" ] && { echo "etcd-$ip's directory is still there after drove delete" >&2; exit 1; }
done
echo "every member stopped and its data removed"
step "done: an etcd cluster of ${#ips[@]} members, installed and removed by drove (state in $work)"
