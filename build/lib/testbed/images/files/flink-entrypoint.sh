#!/bin/bash
# Start a Flink process in the foreground: flink-entrypoint jobmanager|taskmanager [args],
# or run any other command in the image (flink-entrypoint bin/flink ...).
# Configuration: conf/config-base.yaml, then FLINK_PROPERTIES ("key: value" lines, flat keys);
# for a key given more than once the last line wins. This is how the testbed sets fixed ports,
# addresses and memory per service.
set -euo pipefail
conf="$FLINK_HOME/conf"
{ cat "$conf/config-base.yaml"; printf '%s\n' "${FLINK_PROPERTIES:-}"; } \
    | awk -F': ' '/^[A-Za-z0-9_.-]+: / { v[$1] = $0; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
                  END { for (i = 1; i <= n; i++) print v[order[i]] }' > "$conf/config.yaml"
role="${1:-}"
shift || true
case "$role" in
    jobmanager)  exec "$FLINK_HOME/bin/jobmanager.sh" start-foreground "$@" ;;
    taskmanager) exec "$FLINK_HOME/bin/taskmanager.sh" start-foreground "$@" ;;
    "")          echo "usage: flink-entrypoint jobmanager|taskmanager|COMMAND [args]" >&2; exit 2 ;;
    *)           exec "$role" "$@" ;;
esac
