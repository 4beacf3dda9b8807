#!/bin/sh
# Entry point of the tradebus image: `SERVICE [ARGS]` runs python -m tradebus.services.SERVICE and
# records the name for the HEALTHCHECK (`tradebus health`); any other command runs as given
# (`tradebus study ...`, `nats-server -c ...`).
set -e
if [ $# -gt 0 ] && python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("tradebus.services." + sys.argv[1] + ".__main__") is None)' "$1" 2>/dev/null; then
    service="$1"
    shift
    echo "$service" > /tmp/tradebus-service
    exec python -m "tradebus.services.$service" "$@"
fi
exec "$@"
