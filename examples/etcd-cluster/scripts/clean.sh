#!/usr/bin/env bash
# drove runs the image's scripts/clean.sh on every host it removes from the
# cluster (drove delete, scale-down): stop the member and remove its data
# and log. Env as for etcd-start.sh.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
bash "$here/etcd-stop.sh"
. "$here/etcd-lib.sh"
rm -rf -- "$dir"
echo "removed $dir"
