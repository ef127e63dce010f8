# Sourced by the stand-ins. record NAME ARGS... appends one line per call
# to this node's log: "<start> <end> <tool> <args> | env=<...>".
# Steps that run without the cluster env (kubeadm reset on delete) find
# it in the standin.env that init.sh left next to the installed tools.
if [ -z "${STANDIN_LOG_DIR:-}" ] && [ -f "$(dirname "$0")/standin.env" ]; then
	. "$(dirname "$0")/standin.env"
fi
standin_log() {
	dir=${STANDIN_LOG_DIR:?STANDIN_LOG_DIR is not set}
	mkdir -p "$dir"
	printf '%s\n' "$*" >> "$dir/${HostIP:-unknown}.log"
}
standin_now() { date +%s.%N; }
standin_env() { printf 'IMAGE_ENV=%s PRECEDENCE=%s CLUSTER_ENV=%s HOST_ENV=%s' "${IMAGE_ENV:-}" "${PRECEDENCE:-}" "${CLUSTER_ENV:-}" "${HOST_ENV:-}"; }
