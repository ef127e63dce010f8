#!/usr/bin/env bash
# drove's demo: build the example cluster images, rebuild from cache, carry
# them offline through save/load, and through a real OCI registry with
# push/pull — checking digests at each hop. Usage: examples/demo.sh [DROVE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
drove=$(realpath "${1:-$here/../bin/drove}")
work=${DEMO_DIR:-$(mktemp -d /tmp/drove-demo.XXXXXX)}
mkdir -p "$work"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
d() { echo "+ drove $*" >&2; "$drove" "$@"; }
# digest_of DATA_DIR IMAGE prints the image's digest (inspect's first "digest").
digest_of() { "$drove" --data-dir "$1" inspect "$2" | grep -m1 '"digest"' | sed 's/.*"\(sha256:[0-9a-f]*\)".*/\1/'; }

export DROVE_DATA_DIR=$work/site-a
# hello-cluster's app runs registry.k8s.io/pause:3.9, which the build caches
# into the image. Offline, the build would stop there; say so and build
# without it (drove lists it as a warning).
missing=()
if ! timeout 5 bash -c 'exec 3<>/dev/tcp/registry.k8s.io/443' 2>/dev/null; then
  echo "registry.k8s.io is unreachable from here: building with --ignore-missing, so pause:3.9 is not cached"
  missing=(--ignore-missing)
fi
step "build two cluster images (data dir $DROVE_DATA_DIR)"
d build "${missing[@]}" -t hello-cluster:v1 --build-arg VERSION=v1.2.3 "$here/hello-cluster"
d build --platform linux/amd64,linux/arm64 -t multiarch:v1 "$here/multiarch"
step "rebuild: every step comes from the cache"
d build "${missing[@]}" -t hello-cluster:v1 --build-arg VERSION=v1.2.3 "$here/hello-cluster" 2>&1 | grep -E "CACHED|built" 
d images
step "sealer metadata of hello-cluster:v1"
d inspect hello-cluster:v1 | sed -n '/"sealerExtension"/,/^  }/p'

step "offline: save to one archive, load at another site"
d save -o "$work/images.tar" hello-cluster:v1 multiarch:v1
ls -l "$work/images.tar"
d --data-dir "$work/site-b" load -i "$work/images.tar"
for img in docker.io/library/hello-cluster:v1 docker.io/library/multiarch:v1; do
  a=$(digest_of "$work/site-a" $img); b=$(digest_of "$work/site-b" $img)
  [ "$a" = "$b" ] || { echo "digest mismatch for $img: $a vs $b"; exit 1; }
  echo "$img: $a at both sites"
done

step "online: push to a real OCI registry, pull at a third site"
reg=$(command -v docker-registry || true)
if [ -z "$reg" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing docker-registry (Debian's CNCF distribution registry)"
  apt-get install -y -qq --no-install-recommends docker-registry >/dev/null 2>&1 || true
  reg=$(command -v docker-registry || true)
fi
if [ -z "$reg" ]; then
  echo "docker-registry is not installed (apt-get install docker-registry): skipping the registry part"
else
  port=$((20000 + RANDOM % 20000))
  cat > "$work/registry.yml" <<CFG
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
CFG
  "$reg" serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  regpid=$!
  trap 'kill $regpid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  d push hello-cluster:v1 "127.0.0.1:$port/demo/hello-cluster:v1"
  d push multiarch:v1 "127.0.0.1:$port/demo/multiarch:v1"
  d --data-dir "$work/site-c" pull "127.0.0.1:$port/demo/hello-cluster:v1"
  d --data-dir "$work/site-c" pull --platform linux/arm64 "127.0.0.1:$port/demo/multiarch:v1"
  d --data-dir "$work/site-c" images
  a=$(digest_of "$work/site-a" docker.io/library/hello-cluster:v1)
  c=$(digest_of "$work/site-c" "127.0.0.1:$port/demo/hello-cluster:v1")
  [ "$a" = "$c" ] || { echo "digest mismatch after push/pull: $a vs $c"; exit 1; }
  echo "hello-cluster:v1 is $a after push and pull"
fi
step "a cluster of agents on this machine: 3 masters (raft + NATS) and 3 nodes"
d lab up --masters 3 --nodes 3 --dir "$work/lab"
trap '"$drove" lab down --dir "$work/lab" >/dev/null 2>&1 || true; [ -n "${regpid:-}" ] && kill $regpid 2>/dev/null || true' EXIT
step "run a command on every node, exactly once each, through the coordinator"
d exec -- 'echo "$(cat /proc/sys/kernel/hostname) says hello"'
d exec --roles master --parallel 1 -- 'echo one master at a time'
leader=$("$drove" status -o json | grep -m1 '"leader"' | sed 's/.*"leader": "\([^"]*\)".*/\1/')
step "kill -9 the raft leader ($leader): the others elect a new one and carry on"
d lab kill --dir "$work/lab" "$leader"
for _ in $(seq 50); do
  now=$("$drove" status -o json 2>/dev/null | grep -m1 '"leader"' | sed 's/.*"leader": "\([^"]*\)".*/\1/') || true
  [ -n "$now" ] && [ "$now" != "$leader" ] && break
  sleep 0.2
done
d status
d exec --roles node -- 'echo still here under the new leader'
step "the old leader comes back and catches up"
d lab start --dir "$work/lab" "$leader"
for _ in $(seq 50); do
  "$drove" status 2>/dev/null | grep -q "^$leader .* alive" && break
  sleep 0.2
done
d status
d plan ls
step "peer-to-peer: deliver hello-cluster:v1 to every node; n1 holds it and seeds"
d --data-dir "$work/lab/n1" load -i "$work/images.tar"
d distribute hello-cluster:v1 --seed-node n1
for n in m1 m2 m3 n2 n3; do
  d --data-dir "$work/lab/$n" images | grep hello-cluster
  ls "$work/lab/$n/rootfs/"
done
d lab down --dir "$work/lab"
step "done: state is in $work"
