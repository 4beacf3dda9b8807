"""``python -m tradebus.services.sim_exchange --host 127.0.0.1 --port PORT [--sim-config FILE]``.

The venue serves Binance's REST and WebSocket API on its HTTP port and registers on NATS like
every service (``$SRV.PING``, ``svc.sim_exchange.status``). Its venue settings come from
``--sim-config`` (a sim YAML), else the deployment file's ``services.sim_exchange.settings``,
else the packaged default.yaml. ``--standalone`` runs the venue alone, without NATS.
"""
import sys

from tradebus.bus.service import ServiceContext, service_main
from tradebus.config import service_section

from .server import SimExchange, add_restart_safe_ids, with_overrides
from .server import main as standalone_main
from .settings import SimConfig, load_config

DESCRIPTION = "Local Binance spot + USD-M venue for ccxt and ccxt.pro"


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--sim-config", help="sim YAML (default: deployment settings, else the packaged default.yaml)")
    parser.add_argument("--data", help="market data folder (default: $TRADEBUS_DATA_DIR or ../shared/data)")
    parser.add_argument("--speed", help="replay speed: 0 (paused), 1, 10, ... or max")
    parser.add_argument("--seed", type=int, help="seed of the synthetic market and fault draws")
    add_restart_safe_ids(parser)


def venue_config(svc: ServiceContext) -> SimConfig:
    args = svc.args
    entry = svc.config.services.get("sim_exchange")
    if args.sim_config or not (entry and entry.settings):
        config = load_config(args.sim_config)
    else:
        config = service_section(svc.config, "sim_exchange", SimConfig)
    return with_overrides(config, args.speed, args.seed, args.restart_safe_ids)


async def setup(svc: ServiceContext) -> None:
    sim = SimExchange(venue_config(svc), host=svc.args.host, port=svc.args.port, data=svc.args.data)
    await sim.start()
    svc.on_stop(sim.stop)
    svc.message = f"serving {sim.url}"
    print(f"sim_exchange listening on {sim.url}", flush=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--standalone" in argv:
        return standalone_main([a for a in argv if a != "--standalone"])
    return service_main("sim_exchange", DESCRIPTION, setup, argv, add_arguments)


if __name__ == "__main__":
    sys.exit(main())
