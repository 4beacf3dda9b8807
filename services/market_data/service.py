"""Wiring of the market_data service: feeds, replay, recorder and the control endpoint."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from tradebus import metrics
from tradebus.bus.service import ServiceContext
from tradebus.config import service_section
from tradebus.marketdata.record import make_recorder
from tradebus.marketdata.replay import Replayer, open_sources
from tradebus.proto import ServiceCommand, ServiceStatus
from tradebus.proto.codec import encode
from tradebus.proto.subjects import service_subject, subject_for

from .feed import VenueFeed
from .settings import STREAMS, MarketDataSettings

log = logging.getLogger("tradebus.market_data")


class MarketData:
    """Everything the service runs; also usable in-process (tests, benchmarks)."""

    def __init__(self, bus, settings: MarketDataSettings, counters) -> None:
        self.bus = bus
        self.settings = settings
        self.counters = counters
        self.feeds: dict[str, VenueFeed] = {}
        self.recorder = None
        self.replay_task: asyncio.Task | None = None

    async def publish(self, event: Any) -> None:
        subject = subject_for(event)
        data = encode(event)
        await self.bus.publish_bytes(subject, data)
        self.counters["published"] += 1
        metrics.MARKETDATA_EVENTS.labels(event.venue, subject.rsplit(".", 1)[1]).inc()
        if self.recorder is not None:
            await self.recorder.add(subject, data, event)

    async def start(self) -> None:
        if self.settings.record.enabled:
            self.recorder = await make_recorder(self.settings.record, self.bus,
                                                [f.name for f in self.settings.venues]
                                                + ([self.settings.replay.venue] if self.settings.replay else []))
        for venue in self.settings.venues:
            feed = VenueFeed(venue, self.settings.backoff, self.publish, self.counters)
            self.feeds[venue.name] = feed
            feed.start()
        if self.settings.replay and self.settings.replay.files:
            self.replay_task = asyncio.get_running_loop().create_task(self._replay())

    async def _replay(self) -> None:
        r = self.settings.replay
        sources = open_sources([Path(f) for f in r.files], r.venue, r.symbol, r.book_depth)
        replayer = Replayer(sources, self.publish, speed=r.speed, counters=self.counters)
        n = await replayer.run()
        log.info("replay done: %d events published, %d bad rows", n, self.counters["bad.replay"])

    async def stop(self) -> None:
        if self.replay_task:
            self.replay_task.cancel()
            await asyncio.gather(self.replay_task, return_exceptions=True)
        for feed in self.feeds.values():
            await feed.stop()
        if self.recorder is not None:
            await self.recorder.close()

    def list(self) -> str:
        return " ".join(s for f in self.feeds.values() for s in f.active())

    async def control(self, cmd: ServiceCommand) -> str:
        """Apply a control request; returns a one-line outcome (raises ValueError on bad args)."""
        args = cmd.args
        if cmd.command == "list":
            return self.list()
        venue = args.get("venue") or (next(iter(self.feeds)) if len(self.feeds) == 1 else "")
        feed = self.feeds.get(venue)
        if feed is None:
            raise ValueError(f"unknown venue {venue!r}; running: {sorted(self.feeds)}")
        symbols = [s for s in args.get("symbols", args.get("symbol", "")).split(",") if s]
        streams = [s for s in args.get("streams", "").split(",") if s] or None
        if streams and any(s not in STREAMS for s in streams):
            raise ValueError(f"unknown streams in {streams}; known: {list(STREAMS)}")
        if cmd.command == "add":
            if not symbols:
                raise ValueError("add needs args.symbols")
            for symbol in symbols:
                feed.add(symbol, streams or feed.settings.streams)
            return f"added {symbols}; active: {self.list()}"
        if cmd.command == "remove":
            for symbol in symbols:
                await feed.remove(symbol, streams)
            return f"removed {symbols}; active: {self.list()}"
        if cmd.command == "instruments":
            n = await feed.publish_instruments(symbols or None)
            return f"published {n} instruments"
        raise ValueError(f"unknown command {cmd.command!r} (add, remove, instruments, list)")


async def setup(svc: ServiceContext) -> None:
    settings = service_section(svc.config, "market_data", MarketDataSettings)
    md = MarketData(svc.bus, settings, svc.counters)
    await md.start()
    svc.on_stop(md.stop)
    svc.message = f"venues {sorted(md.feeds)}" + (" + replay" if md.replay_task else "") if (
        md.feeds or md.replay_task) else "no feeds configured"

    async def on_control(cmd: ServiceCommand) -> ServiceStatus:
        try:
            message = await md.control(cmd)
        except (ValueError, KeyError) as exc:
            svc.counters["control.rejected"] += 1
            message = f"rejected: {exc}"
        status = svc.status()
        return ServiceStatus(service=status.service, instance=status.instance, state=status.state,
                             message=message, counters=status.counters, ts_init=status.ts_init)

    await svc.add_endpoint("control", service_subject("market_data", "control"), ServiceCommand, on_control)
    svc.market_data = md  # for in-process use
