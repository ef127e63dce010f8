#!/bin/sh
# drove network installer: installs a drove agent on this machine and
# joins it to the cluster. A drove coordinator serves this script at
# https://COORDINATOR:7951/install.sh with the cluster's CA certificate and
# the coordinators' addresses filled in below:
#
#   curl -fsSL --cacert ca.pem https://COORDINATOR:7951/install.sh | sudo sh -s -- --token-file /path/to/token
#
# ca.pem comes from `drove token ca --token-file FILE` on any machine that
# holds the token. Without it, fetch this script with curl -k instead: from
# here on the script trusts only the cluster CA pinned below, so only that
# first fetch is unauthenticated — read the script before running it then.
#
# The script proves it holds the token (a hash of it, never the token
# itself), downloads the drove binary for this OS and architecture from a
# coordinator, checks that it runs, and hands over to `drove agent install`,
# which writes the binary, /etc/drove/agent.yaml, the token and the systemd
# unit, and starts the agent.
set -eu

# BEGIN drove-params (filled in by the coordinator that serves this script)
DROVE_CA=''
DROVE_JOIN=''
DROVE_SERVERS=''
# END drove-params

usage() {
	cat <<'EOF'
Install a drove agent on this machine and join it to the cluster.

Usage: curl -fsSL --cacert ca.pem https://COORDINATOR:7951/install.sh | sh -s -- [options]

  --token T         the cluster token (prefer --token-file; or env DROVE_TOKEN)
  --token-file F    file holding the cluster token
  --roles R         roles of this node, comma-separated (default: node)
  --labels k=v,...  labels of this node
  --root PREFIX     install under PREFIX instead of / (no root needed then)
  --no-start        install, but do not start the agent
  -h, --help        show this help

Set TMPDIR to a directory that allows executables if /tmp is mounted noexec.
EOF
}

die() {
	printf 'drove: %s\n' "$*" >&2
	exit 1
}

# need_value OPTION ARGS...: OPTION must be followed by a value.
need_value() {
	[ "$#" -ge 2 ] || die "$1 needs a value (see --help)"
}

token=${DROVE_TOKEN:-}
token_file=''
roles=''
labels=''
root='/'
no_start=''
while [ "$#" -gt 0 ]; do
	case $1 in
	--token) need_value "$@"; token=$2; shift 2 ;;
	--token=*) token=${1#*=}; shift ;;
	--token-file) need_value "$@"; token_file=$2; shift 2 ;;
	--token-file=*) token_file=${1#*=}; shift ;;
	--roles) need_value "$@"; roles=$2; shift 2 ;;
	--roles=*) roles=${1#*=}; shift ;;
	--labels) need_value "$@"; labels=$2; shift 2 ;;
	--labels=*) labels=${1#*=}; shift ;;
	--root) need_value "$@"; root=$2; shift 2 ;;
	--root=*) root=${1#*=}; shift ;;
	--no-start) no_start=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option $1" ;;
	esac
done

if [ -z "$DROVE_CA" ] || [ -z "$DROVE_SERVERS" ]; then
	die "this copy of install.sh has no cluster filled in: fetch it from a coordinator, https://COORDINATOR:7951/install.sh"
fi
[ -n "$DROVE_JOIN" ] || die "the coordinator that served this script knew no live coordinator to join; try again"

if [ -n "$token_file" ]; then
	[ -r "$token_file" ] || die "cannot read the token file $token_file"
	token=$(cat "$token_file")
fi
token=$(printf '%s' "$token" | tr -d ' \t\r\n')
[ -n "$token" ] || die "no cluster token: pass --token T or --token-file F (the token the cluster was started with)"

case $root in
/*) ;;
*) die "--root $root: want an absolute path" ;;
esac
if [ "$root" = / ] && [ "$(id -u)" != 0 ]; then
	die "installing into / needs root: pipe the script into 'sudo sh -s -- ...' (or pass --root PREFIX)"
fi

command -v curl >/dev/null 2>&1 || die "curl is needed to download drove"
if command -v sha256sum >/dev/null 2>&1; then
	sha256() { sha256sum | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
	sha256() { shasum -a 256 | cut -d ' ' -f 1; }
elif command -v openssl >/dev/null 2>&1; then
	sha256() { openssl dgst -sha256 | sed 's/^.*= *//'; }
else
	die "sha256sum, shasum or openssl is needed to prove the cluster token"
fi

case $(uname -s) in
Linux) os=linux ;;
Darwin) os=darwin ;;
FreeBSD) os=freebsd ;;
*) die "no drove build for this OS ($(uname -s))" ;;
esac
case $(uname -m) in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
armv6* | armv7* | armhf) arch=arm ;;
i386 | i486 | i586 | i686) arch=386 ;;
ppc64le) arch=ppc64le ;;
s390x) arch=s390x ;;
riscv64) arch=riscv64 ;;
loongarch64) arch=loong64 ;;
*) die "no drove build for this architecture ($(uname -m))" ;;
esac
name="drove-$os-$arch"

umask 077
tmp=$(mktemp -d "${TMPDIR:-/tmp}/drove-install.XXXXXX") || die "cannot make a temporary directory in ${TMPDIR:-/tmp}"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

printf '%s\n' "$DROVE_CA" >"$tmp/ca.pem"
printf '%s\n' "$token" >"$tmp/token"
proof=$(printf '%s%s' 'drove/v1 install proof:' "$token" | sha256)
# The header goes through a file so the proof stays out of the process list.
printf 'Authorization: Bearer %s\n' "$proof" >"$tmp/auth"

from=''
for server in $DROVE_SERVERS; do
	if ! code=$(curl -sS -g --connect-timeout 10 --cacert "$tmp/ca.pem" -H "@$tmp/auth" \
		-o "$tmp/body" -w '%{http_code}' "https://$server/dl/$name"); then
		printf 'drove: %s did not answer (see above)\n' "$server" >&2
		continue
	fi
	case $code in
	200)
		from=$server
		break
		;;
	401 | 403)
		# The coordinator's own words: the token was refused.
		cat "$tmp/body" >&2
		exit 1
		;;
	*)
		printf 'drove: %s answered HTTP %s: %s\n' "$server" "$code" "$(head -c 512 "$tmp/body")" >&2
		;;
	esac
done
[ -n "$from" ] || die "could not download $name from any coordinator ($DROVE_SERVERS)"

mv "$tmp/body" "$tmp/drove"
chmod 0755 "$tmp/drove"
if ! "$tmp/drove" --data-dir "$tmp" version >/dev/null 2>&1; then
	die "the $name downloaded from $from does not run here (is ${TMPDIR:-/tmp} mounted noexec? set TMPDIR)"
fi

set -- agent install --join "$DROVE_JOIN" --token-file "$tmp/token" --root "$root"
if [ -n "$roles" ]; then
	set -- "$@" --roles "$roles"
fi
if [ -n "$labels" ]; then
	set -- "$@" --labels "$labels"
fi
if [ -n "$no_start" ]; then
	set -- "$@" --no-start
fi
printf 'drove: downloaded %s from %s; installing the agent (joins %s)\n' "$name" "$from" "$DROVE_JOIN" >&2
"$tmp/drove" "$@"
