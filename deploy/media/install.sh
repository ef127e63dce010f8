#!/bin/sh
# Installs the drove agent from drove media (drove media build): the binary
# for this machine, the agent config and token beside this script, and the
# cluster image on the media for the agent to seed. Run it as root from the
# mounted media:
#
#   sh /mnt/drove-media/drove/install.sh [drove agent install flags...]
#
# ROOT=/some/dir installs under that directory instead of / (and starts the
# agent from there), so the media can be tried without touching the host.
# Extra arguments go to `drove agent install` (e.g. --no-start, --roles).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
media=$(dirname "$here")

die() {
	echo "drove media install: $*" >&2
	exit 1
}

case $(uname -m) in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
armv7* | armv6* | armhf) arch=arm ;;
riscv64) arch=riscv64 ;;
ppc64le) arch=ppc64le ;;
s390x) arch=s390x ;;
*) die "no drove binary for this machine ($(uname -m))" ;;
esac

bin=$here/bin/drove-linux-$arch
[ -f "$bin" ] || die "these media carry no drove binary for $arch (looked for $bin); build them with --arch $arch"
[ -f "$here/agent.yaml" ] || die "missing $here/agent.yaml"
[ -f "$here/token" ] || die "missing $here/token"

# Media are often mounted noexec (and FAT has no exec bit): run a copy.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/drove-media.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Check what this script is about to run against the manifest (the agent
# checks the image's blobs itself).
if command -v sha256sum >/dev/null 2>&1; then
	[ -f "$here/MANIFEST.sha256" ] || die "missing $here/MANIFEST.sha256"
	for f in "drove/bin/drove-linux-$arch" drove/agent.yaml drove/token; do
		line=$(awk -v f="$f" 'length($1) == 64 && $2 == f' "$here/MANIFEST.sha256")
		[ -n "$line" ] || die "$f is not listed in drove/MANIFEST.sha256"
		printf '%s\n' "$line" >>"$tmp/check"
	done
	(cd "$media" && sha256sum -c --quiet "$tmp/check") >&2 ||
		die "the media do not match their manifest: re-copy them, or check them with drove media verify"
fi

cp "$bin" "$tmp/drove"
chmod 0755 "$tmp/drove"

"$tmp/drove" agent install --root "${ROOT:-/}" \
	--binary "$tmp/drove" \
	--config "$here/agent.yaml" \
	--token-file "$here/token" \
	--media "$here/image" \
	"$@"
