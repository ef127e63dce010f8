#!/usr/bin/env bash
# Stops this host's etcd member (SIGTERM, then SIGKILL after
# ETCD_STOP_TIMEOUT seconds, default 10). Its data stays. A member that is
# not running is fine. Env as for etcd-start.sh.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/etcd-lib.sh"

if ! pid=$(running); then
	echo "etcd member $name is not running"
	rm -f "$pidfile"
	exit 0
fi
kill -TERM "$pid"
deadline=$((SECONDS + ${ETCD_STOP_TIMEOUT:-10}))
while alive "$pid"; do
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "etcd member $name (pid $pid) ignored SIGTERM for ${ETCD_STOP_TIMEOUT:-10}s: killing it" >&2
		kill -KILL "$pid" 2>/dev/null || true
		break
	fi
	sleep 0.1
done
rm -f "$pidfile"
echo "etcd member $name stopped"
