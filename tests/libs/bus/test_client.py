import asyncio

import pytest

from tradebus.bus import Batcher, RequestError
from tradebus.proto import ServiceCommand, ServiceStatus, Trade, TradeBatch
from tradebus.proto.codec import encode


def trade(i: int, symbol: str = "BTC/USDT") -> Trade:
    return Trade(venue="sim", symbol=symbol, price=100.0 + i, qty=0.5, side="buy", trade_id=str(i), ts_event=i, ts_recv=i)


async def next_item(queue: asyncio.Queue, timeout: float = 2.0):
    return await asyncio.wait_for(queue.get(), timeout)


async def test_typed_publish_subscribe_round_trip(bus):
    got: asyncio.Queue = asyncio.Queue()

    async def on_trade(t, msg):
        await got.put((t, msg.subject))

    await bus.subscribe("test.pubsub.>", Trade, on_trade)
    await bus.publish("test.pubsub.BTC-USDT", trade(1))
    t, subject = await next_item(got)
    assert t == trade(1) and subject == "test.pubsub.BTC-USDT"


async def test_bad_input_is_counted_and_the_subscription_goes_on(bus):
    got: asyncio.Queue = asyncio.Queue()

    async def on_trade(t, msg):
        await got.put(t)

    await bus.subscribe("test.bad", Trade, on_trade)
    await bus.nc.publish("test.bad", b"\xc1\xc1 not msgpack")
    await bus.nc.publish("test.bad", encode(ServiceCommand(service="x", command="status")))
    await bus.nc.publish("test.bad", b"\x00" * (bus.max_message_bytes + 1))
    await bus.publish("test.bad", trade(7))
    assert await next_item(got) == trade(7)
    assert got.empty()
    assert bus.bad_input.counts[("test.bad", "undecodable")] == 1
    assert bus.bad_input.counts[("test.bad", "invalid")] == 1
    assert bus.bad_input.counts[("test.bad", "oversized")] == 1


async def test_a_handler_that_raises_does_not_stop_the_subscription(bus):
    got: asyncio.Queue = asyncio.Queue()

    async def flaky(t, msg):
        if t.trade_id == "1":
            raise RuntimeError("boom")
        await got.put(t)

    await bus.subscribe("test.flaky", Trade, flaky)
    await bus.publish("test.flaky", trade(1))
    await bus.publish("test.flaky", trade(2))
    assert (await next_item(got)).trade_id == "2"
    assert bus.handler_errors == 1


async def test_request_reply_and_error_replies(bus):
    async def status(cmd: ServiceCommand) -> ServiceStatus:
        if cmd.command == "fail":
            raise ValueError("asked to fail")
        return ServiceStatus(service=cmd.service, instance="i-1", state="running", ts_init=1)

    await bus.serve("test.rpc", ServiceCommand, status)
    reply = await bus.request("test.rpc", ServiceCommand(service="svc", command="status"), ServiceStatus)
    assert reply.service == "svc" and reply.instance == "i-1"

    with pytest.raises(RequestError) as bad:
        await bus.request("test.rpc", trade(1), ServiceStatus)
    assert bad.value.code == "400"
    with pytest.raises(RequestError) as failed:
        await bus.request("test.rpc", ServiceCommand(service="svc", command="fail"), ServiceStatus)
    assert failed.value.code == "500" and "asked to fail" in failed.value.description
    # still serving
    assert (await bus.request("test.rpc", ServiceCommand(service="again", command="status"), ServiceStatus)).service == "again"


async def test_batcher_flushes_on_size_and_on_time(bus):
    batches: asyncio.Queue = asyncio.Queue()

    async def on_batch(b, msg):
        await batches.put(b)

    await bus.subscribe("test.batch", TradeBatch, on_batch)
    batcher = Batcher(bus, "test.batch", TradeBatch.from_trades, max_items=3, max_delay=0.05)
    for i in range(4):
        await batcher.add(trade(i))
    first = await next_item(batches)
    assert [t.trade_id for t in first.trades()] == ["0", "1", "2"]
    second = await next_item(batches)  # the lone fourth trade goes out after max_delay
    assert [t.trade_id for t in second.trades()] == ["3"]
    await batcher.aclose()
    assert batcher.published_batches == 2


def test_batcher_rejects_nonsense_settings(bus):
    with pytest.raises(ValueError):
        Batcher(bus, "x", TradeBatch.from_trades, max_items=0)
