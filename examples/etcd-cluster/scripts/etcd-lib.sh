# Shared by the etcd-*.sh scripts (sourced, not run). Sets:
#   root    the cluster image's rootfs on this host (the scripts' parent)
#   envfile etc/etcd.env, rendered by drove from etc/etcd.env.tmpl
#   name    this member's name (ETCD_NAME in envfile, else etcd-$HostIP)
#   dir     this member's directory: ${ETCD_DATA:-/var/lib/drove-etcd}/$name,
#           holding data/, etcd.log, etcd.pid and starts (a line
#           per start)
#   pidfile $dir/etcd.pid
# and defines running, which prints the member's pid when it is running,
# and alive PID.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
envfile=$root/etc/etcd.env

# envvar KEY prints KEY's value in envfile (empty when missing).
envvar() {
	[ -f "$envfile" ] || return 0
	sed -n "s/^$1=//p" "$envfile" | tail -n 1
}

name=$(envvar ETCD_NAME)
if [ -z "$name" ] && [ -n "${HostIP:-}" ]; then
	name=etcd-$HostIP
fi
if [ -z "$name" ]; then
	echo "cannot tell this host's etcd member: $envfile has no ETCD_NAME and HostIP is not set" >&2
	echo "(drove renders $envfile from etc/etcd.env.tmpl with HostIP; run this script through drove, or set HostIP)" >&2
	exit 1
fi
dir=${ETCD_DATA:-/var/lib/drove-etcd}/$name
pidfile=$dir/etcd.pid

# alive succeeds while process $1 exists and has not exited (a zombie
# waiting to be reaped has).
alive() {
	[ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# running prints the pid of this member's etcd and succeeds when the pid
# file names a live etcd process (not a recycled pid).
running() {
	local pid
	pid=$(cat "$pidfile" 2>/dev/null) || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	alive "$pid" || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'etcd' || return 1
	echo "$pid"
}
