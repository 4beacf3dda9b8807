"""``tradebus audit``: the order ledger of a running paper stack, from its beginning.

Reconciles the ORDERS stream with sim_exchange's own records (and, given ``--journal
NAME=PATH``, with what each strategy journalled; given ``--study ID``, BT_RESULTS with the
study's jobs), prints the tally (sent, accepted, rejected by reason, filled, lost, duplicated)
and exits 1 when anything was lost, duplicated or does not add up. It assumes the venue has lived
as long as the stream (a restarted sim forgets what it recorded).
"""
from __future__ import annotations

import asyncio
import sys

from tradebus.audit import Audit
from tradebus.cli.connect import bus_url, connect
from tradebus.study import build_jobs, load_spec


async def audit(args) -> int:
    bus = await connect(bus_url(args), "tradebus-audit")
    try:
        journals = dict(item.split("=", 1) for item in args.journal)
        ledger = Audit(bus, args.sim_url, journals=journals, api_key=args.api_key)
        for study in args.study:
            ledger.expect_study(study, [p.job.job_id for p in build_jobs(await load_spec(bus, study))])
        await ledger.start(from_beginning=True)
        tally = await ledger.tally("audit", require_final=not args.allow_open)
    finally:
        await bus.close()
    print(tally.report(limit=args.limit))
    return 0 if tally.balanced else 1


def run(args) -> int:
    if any("=" not in item for item in args.journal):
        print("tradebus audit: --journal takes NAME=PATH", file=sys.stderr)
        return 2
    return asyncio.run(audit(args))


def register(sub) -> None:
    p = sub.add_parser("audit", help="reconcile orders, venue records, fills and study results (the ledger)")
    p.add_argument("--nats-url", help="default: $TRADEBUS_NATS_URL, else <state-dir>/nats-url")
    p.add_argument("--state-dir", default=".state")
    p.add_argument("--sim-url", default="http://127.0.0.1:8765", help="the sim_exchange whose records to check")
    p.add_argument("--api-key", default="sim-key", help="the venue account the router trades")
    p.add_argument("--journal", action="append", default=[], metavar="NAME=PATH",
                   help="a strategy's fill journal (tradebus.audit.FillJournal); repeatable")
    p.add_argument("--study", action="append", default=[], metavar="ID", help="a study whose results to count")
    p.add_argument("--allow-open", action="store_true", help="resting orders are fine (not a final state yet)")
    p.add_argument("--limit", type=int, default=50, help="problems listed at most")
    p.set_defaults(func=run)
