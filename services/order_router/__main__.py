"""order_router service: order requests -> ccxt calls on one venue account; order events out."""
import sys

from tradebus.bus.service import ServiceContext, service_main
from tradebus.proto import OrderRequest
from tradebus.proto.subjects import order_request_subject

DESCRIPTION = "Order router: ord.req.<venue> -> venue; ord.evt.<venue>.<strategy> out"


def add_arguments(parser) -> None:
    parser.add_argument("--venue", default="sim", help="venue account this router owns")


async def setup(svc: ServiceContext) -> None:
    async def on_request(request, _msg) -> None:
        svc.counters["order_requests"] += 1

    await svc.subscribe(order_request_subject(svc.args.venue), OrderRequest, on_request)
    svc.message = f"venue {svc.args.venue}: no venue connection configured"


def main(argv=None) -> int:
    return service_main("order_router", DESCRIPTION, setup, argv, add_arguments)


if __name__ == "__main__":
    sys.exit(main())
