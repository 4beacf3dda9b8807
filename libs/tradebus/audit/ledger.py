"""The order ledger: what was asked, what the venue did, what the bus said and what each strategy
saw, reconciled into one tally that must balance.

Inputs are plain records (gathered by :mod:`tradebus.audit.collect` from the ORDERS stream, the
venue's own records, the strategies' fills and BT_RESULTS); ``balance`` checks them:

- every NewOrder has an outcome (accepted or rejected, by reason);
- every accepted order has exactly one venue order and a final state, a rejected one none;
- every venue fill appears exactly once in the order events and once in its strategy's fills
  (a fill the strategy got as a restored position after a restart counts as seen);
- each strategy's position is the sum of its venue fills, and all of them together are the
  venue's balance change;
- every study job has exactly one result.

A fill is identified by (client order id, trade id) on the venue and the bus, by (symbol, trade
id) in a strategy, which sees no client order ids.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tradebus.execution import market_currencies, position_change

__all__ = ["VenueOrder", "VenueFill", "StrategyFills", "BusOrders", "Tally", "balance", "assert_balanced",
           "LedgerError", "FINAL_VENUE_STATES", "TOLERANCE"]

FINAL_VENUE_STATES = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})
TOLERANCE = 1e-9  # quantities are float sums of 8-decimal numbers


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as the venue records it (status in the venue's words: NEW, FILLED, CANCELED...)."""

    client_id: str
    order_id: str
    symbol: str
    side: str  # buy | sell
    status: str
    qty: float
    executed: float


@dataclass(frozen=True, slots=True)
class VenueFill:
    """One execution as the venue records it; ``fee`` in ``fee_currency``."""

    client_id: str
    trade_id: str
    symbol: str
    side: str
    qty: float
    price: float
    fee: float = 0.0
    fee_currency: str = ""
    time_ms: int = 0

    @property
    def position_change(self) -> float:
        return position_change(self.symbol, self.side, self.qty, self.fee, self.fee_currency)


@dataclass(slots=True)
class StrategyFills:
    """What one strategy saw during the scenario: its fills (symbol, trade id, signed position
    change, time in ns), its position change per symbol, and the times (ns) it was given a
    restored position (after a restart)."""

    fills: list[tuple[str, str, float, int]] = field(default_factory=list)
    position: dict[str, float] = field(default_factory=dict)
    restored_at_ns: list[int] = field(default_factory=list)


@dataclass(slots=True)
class BusOrders:
    """The ORDERS stream, reduced: per client order id its NewOrders and its events."""

    requests: dict[str, list] = field(default_factory=dict)  # coid -> [NewOrder, ...]
    events: dict[str, list] = field(default_factory=dict)  # coid -> [event, ...] in stream order
    other_requests: int = 0  # cancels, modifies, cancel-alls

    def add_request(self, request) -> None:
        coid = getattr(request, "client_order_id", None)
        if type(request).__name__ == "NewOrder" and coid:
            self.requests.setdefault(coid, []).append(request)
        else:
            self.other_requests += 1

    def add_event(self, event) -> None:
        coid = getattr(event, "client_order_id", None)
        if coid:
            self.events.setdefault(coid, []).append(event)


@dataclass
class Tally:
    """The balance of one scenario. ``problems`` says what each lost/duplicated/mismatched is."""

    scenario: str = ""
    sent: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    filled: int = 0
    cancelled: int = 0
    open: int = 0
    fills: int = 0
    study_results: int = 0
    lost: int = 0
    duplicated: int = 0
    mismatched: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return not (self.lost or self.duplicated or self.mismatched)

    def _problem(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        self.problems.append(f"{kind}: {text}")

    def line(self) -> str:
        reasons = ",".join(f"{k}={v}" for k, v in sorted(self.rejected.items()))
        return (f"{self.scenario or 'ledger'}: sent={self.sent} accepted={self.accepted} "
                f"rejected={sum(self.rejected.values())}{f' ({reasons})' if reasons else ''} filled={self.filled} "
                f"cancelled={self.cancelled} open={self.open} fills={self.fills} study_results={self.study_results} "
                f"lost={self.lost} duplicated={self.duplicated} mismatched={self.mismatched}")

    def report(self, limit: int = 20) -> str:
        more = len(self.problems) - limit
        return "\n".join([self.line(), *("  " + p for p in self.problems[:limit]),
                          *([f"  ... {more} more"] if more > 0 else [])])


class LedgerError(AssertionError):
    """The ledger does not balance: something was lost, duplicated or does not add up."""


_ACCEPTED = ("OrderAck", "Fill", "OrderCancelled")
_REJECTED = ("OrderReject", "UnsupportedOp")


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


def balance(bus: BusOrders, venue_orders: list[VenueOrder], venue_fills: list[VenueFill], *,
            strategies: dict[str, StrategyFills] | None = None,
            balance_change: dict[str, float] | None = None,
            study_jobs: dict[str, set[str]] | None = None, study_results: dict[str, list[str]] | None = None,
            require_final: bool = True, scenario: str = "") -> Tally:
    """Reconcile; ``venue_orders``/``venue_fills`` are the venue's records of this scenario's
    orders (any order whose client id is not a requested one counts as mismatched).
    ``strategies`` maps a strategy name to what it saw; ``balance_change`` is the venue's change
    of each base asset over the scenario; ``study_jobs``/``study_results`` map a study id to its
    job ids and to the job ids of the results stored (one entry per stored result)."""
    t = Tally(scenario=scenario)
    by_client: dict[str, list[VenueOrder]] = defaultdict(list)
    for order in venue_orders:
        by_client[order.client_id].append(order)
    fills_by_key: dict[tuple[str, str], list[VenueFill]] = defaultdict(list)
    for fill in venue_fills:
        fills_by_key[(fill.client_id, fill.trade_id)].append(fill)

    owner: dict[str, str] = {}
    for coid, requests in bus.requests.items():
        t.sent += 1
        owner[coid] = requests[0].strategy
        events = bus.events.get(coid, [])
        names = [type(e).__name__ for e in events]
        at_venue = by_client.get(coid, [])
        rejects = [e for e in events if type(e).__name__ in _REJECTED]
        accepted = any(n in _ACCEPTED for n in names) or any(
            n == "OrderStatus" and str(e.status) not in ("new", "rejected") for n, e in zip(names, events))
        if rejects and not accepted:
            reason = getattr(rejects[0], "reject_code", None) or "unsupported"
            t.rejected[str(reason)] += 1
            if len({type(r).__name__ + getattr(r, "reason", "") for r in rejects}) > 1:
                t._problem("duplicated", f"{coid}: {len(rejects)} different rejects")
            if at_venue:
                t._problem("mismatched", f"{coid}: rejected ({reason}) but the venue has {len(at_venue)} order(s) "
                                         f"{[o.status for o in at_venue]}")
            continue
        if rejects and accepted:
            t._problem("mismatched", f"{coid}: both accepted and rejected ({names})")
        if not accepted:
            t._problem("lost", f"{coid}: no outcome on the bus (events: {names or 'none'}, "
                               f"venue orders: {[o.status for o in at_venue]})")
            continue
        t.accepted += 1
        if not at_venue:
            t._problem("lost", f"{coid}: accepted but no venue order")
            continue
        if len(at_venue) > 1:
            t._problem("duplicated", f"{coid}: {len(at_venue)} venue orders {[o.order_id for o in at_venue]}")
        order = at_venue[0]
        if order.status == "FILLED":
            t.filled += 1
        elif order.status in FINAL_VENUE_STATES:
            t.cancelled += 1
        else:
            t.open += 1
            if require_final:
                t._problem("lost", f"{coid}: venue order {order.order_id} still {order.status}, no final state")
        bus_qty = sum(e.qty for e in events if type(e).__name__ == "Fill")
        if not _close(bus_qty, sum(o.executed for o in at_venue)):
            t._problem("mismatched", f"{coid}: venue executed {order.executed:g}, fills on the bus {bus_qty:g}")

    for coid, orders in by_client.items():
        if coid not in bus.requests:
            t._problem("mismatched", f"venue order(s) {[o.order_id for o in orders]} with client id {coid} "
                                     "nobody requested")

    # venue fills <-> Fill events, exactly once each
    bus_fills: Counter = Counter()
    for coid, events in bus.events.items():
        for e in events:
            if type(e).__name__ == "Fill":
                bus_fills[(coid, e.trade_id)] += 1
    venue_changes: dict[tuple[str, str], float] = defaultdict(float)  # (strategy, symbol) -> position change
    for key, fills in fills_by_key.items():
        t.fills += 1
        if len(fills) > 1:
            t._problem("duplicated", f"venue fill {key} recorded {len(fills)} times by the venue")
        seen = bus_fills.get(key, 0)
        if seen == 0:
            t._problem("lost", f"venue fill {key} ({fills[0].side} {fills[0].qty:g}) missing from the order events")
        elif seen > 1:
            t._problem("duplicated", f"venue fill {key} appears {seen} times in the order events")
        strategy = owner.get(key[0])
        if strategy is not None:
            venue_changes[(strategy, fills[0].symbol)] += fills[0].position_change
    for key, count in bus_fills.items():
        if key not in fills_by_key:
            t._problem("mismatched", f"Fill event {key} (x{count}) the venue never made")

    if strategies is not None:
        _check_strategies(t, strategies, fills_by_key, owner, venue_changes)
    if balance_change is not None:
        totals: dict[str, float] = defaultdict(float)
        for (_, symbol), change in venue_changes.items():
            base, _, settle = market_currencies(symbol)
            if settle is None:  # a derivative's position moves its margin account, not a spot wallet
                totals[base] += change
        for asset in set(totals) | set(balance_change):
            if not _close(totals.get(asset, 0.0), balance_change.get(asset, 0.0)):
                t._problem("mismatched", f"venue {asset} balance changed by {balance_change.get(asset, 0.0):g}, "
                                         f"the fills add up to {totals.get(asset, 0.0):g}")
    if study_jobs is not None:
        results = study_results or {}
        for study, jobs in study_jobs.items():
            stored = Counter(results.get(study, []))
            t.study_results += sum(stored.values())
            for job in sorted(jobs):
                if stored[job] == 0:
                    t._problem("lost", f"study {study}: no result for job {job}")
                elif stored[job] > 1:
                    t._problem("duplicated", f"study {study}: job {job} has {stored[job]} results")
            for job in sorted(set(stored) - jobs):
                t._problem("mismatched", f"study {study}: result for unknown job {job}")
    return t


def _check_strategies(t: Tally, strategies: dict[str, StrategyFills], fills_by_key, owner: dict[str, str],
                      venue_changes: dict[tuple[str, str], float]) -> None:
    for name, seen in strategies.items():
        counts = Counter((symbol, trade_id) for symbol, trade_id, _, _ in seen.fills)
        expected = {}
        for (coid, trade_id), fills in fills_by_key.items():
            if owner.get(coid) == name:
                expected[(fills[0].symbol, trade_id)] = fills[0]
        for key, fill in expected.items():
            n = counts.get(key, 0)
            if n > 1:
                t._problem("duplicated", f"strategy {name} got fill {key} {n} times")
            elif n == 0 and not any(at >= fill.time_ms * 1_000_000 for at in seen.restored_at_ns):
                t._problem("lost", f"strategy {name} never saw fill {key} ({fill.side} {fill.qty:g})")
        for key in counts.keys() - expected.keys():
            t._problem("mismatched", f"strategy {name} got fill {key} the venue never made for it")
        symbols = set(seen.position) | {s for (n, s) in venue_changes if n == name}
        for symbol in symbols:
            have, want = seen.position.get(symbol, 0.0), venue_changes.get((name, symbol), 0.0)
            if not _close(have, want):
                t._problem("mismatched", f"strategy {name} {symbol}: position {have:g}, its venue fills add up "
                                         f"to {want:g}")


def assert_balanced(tally: Tally) -> Tally:
    """Print the tally; raise LedgerError naming every problem when anything was lost, duplicated
    or does not add up."""
    print(tally.report(limit=50), flush=True)
    if not tally.balanced:
        raise LedgerError(tally.report())
    return tally
