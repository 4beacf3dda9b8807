"""The environment's view of one MLThon order, and the order info handed to ``on_orders_info``."""
from __future__ import annotations

from dataclasses import dataclass, field

from tradebus.mlthon.basics.defs import TIF, ExecInstructions, OrderStatus, OrderType, Side
from tradebus.mlthon.basics.price import Price
from tradebus.mlthon.basics.qty import Qty

_CANCEL_PENDING = "cancel"
_MODIFY_PENDING = "modify"


@dataclass
class Order:
    """One order as MLThon's ``on_orders_info`` lists it (and as the environment tracks it)."""

    client_id: int
    instrument_id: int
    side: Side
    price: Price
    qty: Qty
    order_type: OrderType
    tif: TIF
    exec_instr: ExecInstructions
    exchange_id: str = ""
    filled: Qty = field(default_factory=Qty)
    status: OrderStatus = OrderStatus.Unset
    order_id: int = 0                       # the tradebus order id behind it
    pending: str = ""                       # "cancel" or "modify" while one is in flight
    pending_price: Price | None = None
    pending_qty: Qty | None = None
    cancel_all: bool = False                # its cancel came from send_cancel_all

    @property
    def leaves_qty(self) -> Qty:
        if self.status in (OrderStatus.Filled, OrderStatus.Cancelled, OrderStatus.Rejected, OrderStatus.Expired):
            return Qty(0)
        left = self.qty - self.filled
        return left if left > 0 else Qty(0)

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.Unset, OrderStatus.New, OrderStatus.PartiallyFilled)

    # Aliases with MLThon's getter style.
    def get_client_order_id(self) -> int:
        return self.client_id

    def get_instrument_id(self) -> int:
        return self.instrument_id

    def get_side(self) -> Side:
        return self.side

    def get_price(self) -> Price:
        return self.price

    def get_qty(self) -> Qty:
        return self.qty

    def get_leaves_qty(self) -> Qty:
        return self.leaves_qty

    def get_status(self) -> OrderStatus:
        return self.status
