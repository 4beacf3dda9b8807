"""Control of the router: the kill switch and account queries, as NATS service endpoints.

``svc.order_router.kill`` / ``svc.order_router.release`` take a ``ServiceCommand`` whose args may
name a ``venue`` (another venue's router stays silent) and a ``strategy`` (none: every strategy
on the venue). They are endpoints of the router's ``nats.micro`` service, so ``$SRV.INFO``
lists them, and a request that does not decode gets a 400 like every other endpoint.
``svc.order_router.query.<venue>`` answers an AccountQuery from the venue (see .queries). An engaged
switch is kept in KV, so a restarted router still refuses; the checks themselves are the
execution layer's (``RiskEngine.pre_trade``).
"""
from __future__ import annotations

import logging
import time

from tradebus.bus.service import add_typed_endpoint
from tradebus.proto import AccountQuery, AccountSnapshot, CommandResult, ServiceCommand
from tradebus.proto.subjects import EXTERNAL_STRATEGY, account_query_subject, service_subject

from .queries import answer_query

__all__ = ["Control", "COMMANDS"]

log = logging.getLogger("tradebus.order_router")

COMMANDS = ("kill", "release")


class Control:
    """Part of OrderRouter: the kill switch and its endpoints."""

    async def _register_control(self, service) -> None:
        for command in COMMANDS:
            async def handler(cmd: ServiceCommand, command=command) -> CommandResult | None:
                return await self._on_command(command, cmd)
            # one queue group per venue: every venue's router hears a command, one instance each answers
            await add_typed_endpoint(service, self.bus, command, service_subject("order_router", command),
                                     ServiceCommand, handler, queue_group=f"order_router-{self.venue}")
        await add_typed_endpoint(service, self.bus, "query", account_query_subject(self.venue), AccountQuery,
                                 self.answer_query, queue_group=f"order_router-{self.venue}")

    async def answer_query(self, query: AccountQuery) -> AccountSnapshot:
        """What the venue says about the account (MLThon's fetch_*), or the router's view of orders."""
        return await answer_query(query, venue=self.venue, account=self.venue, adapters=self.adapters,
                                  adapter_for=self.adapter_for,
                                  orders=lambda strategy, symbol: [r.status for r in self.open_orders(strategy, symbol)],
                                  call=self._call)

    async def kill(self, strategy: str | None = None) -> int:
        """Engage the kill switch (kept in KV for a restart) and cancel the open orders it covers;
        returns how many."""
        self.risk.kill(strategy)
        args = {"venue": self.venue, **({"strategy": strategy} if strategy else {})}
        await self.store.save_kill(strategy, ServiceCommand(service="order_router", command="kill", args=args,
                                                            ts_init=time.time_ns()))
        targets = [r for r in self.open_orders(strategy) if r.status.strategy != EXTERNAL_STRATEGY or strategy is None]
        for rec in targets:
            rec.cancel_requested = True
        return await self._cancel_many(targets)

    async def release(self, strategy: str | None = None) -> None:
        """Release the kill switch of ``strategy`` (None: every switch on this venue), KV first."""
        await self.store.delete_kills(strategy)
        self.risk.release(strategy)

    async def _on_command(self, command: str, cmd: ServiceCommand) -> CommandResult | None:
        venue = cmd.args.get("venue")
        if venue and venue != self.venue:
            return None
        strategy = cmd.args.get("strategy") or None
        if command == "kill":
            count = await self.kill(strategy)
            text = f"kill switch on for {strategy or 'all strategies'} on {self.venue}; {count} orders cancelled"
        else:
            await self.release(strategy)
            text = f"kill switch released for {strategy or 'all strategies'} on {self.venue}"
        log.warning("%s", text)
        return CommandResult(strategy=strategy or "*", command=command, ok=True, message=text, ts_init=time.time_ns())
