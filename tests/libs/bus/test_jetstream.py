import asyncio

import msgspec
from nats.js import api

from tradebus.bus.jetstream import KV_BUCKETS, STREAMS, declare_all, declare_stream
from tradebus.proto import subjects


async def test_declarations_are_idempotent(bus):
    first = await declare_all(bus.js)
    second = await declare_all(bus.js)
    assert set(first.streams) == set(STREAMS) == {subjects.ORDERS_STREAM, subjects.BT_JOBS_STREAM, subjects.BT_RESULTS_STREAM}
    for name, info in second.streams.items():
        before = first.streams[name].config
        assert info.config.subjects == before.subjects
        assert info.config.retention == before.retention
        assert info.config.max_age == before.max_age
    assert (await bus.js.stream_info(subjects.BT_JOBS_STREAM)).config.retention == api.RetentionPolicy.WORK_QUEUE
    assert set(second.kv) == set(KV_BUCKETS)


async def test_a_changed_stream_config_is_updated_in_place(bus):
    cfg = api.StreamConfig(name="TEST_EVOLVE", subjects=["evolve.>"], max_age=60.0)
    await declare_stream(bus.js, cfg)
    await bus.js.publish("evolve.a", b"kept")
    info = await declare_stream(bus.js, api.StreamConfig(name="TEST_EVOLVE", subjects=["evolve.>"], max_age=120.0))
    assert info.config.max_age == 120.0
    assert info.state.messages == 1


async def test_kv_put_get_watch(bus):
    declared = await declare_all(bus.js)
    kv = declared.kv[subjects.KV_STRATEGY_PARAMS]
    watcher = await kv.watch("sma_cross")
    rev = await kv.put("sma_cross", msgspec.json.encode({"fast": 10, "slow": 30}))
    entry = await kv.get("sma_cross")
    assert entry.revision == rev and msgspec.json.decode(entry.value) == {"fast": 10, "slow": 30}
    seen = []
    async def collect():
        async for update in watcher:
            if update is None:  # end of the initial values
                continue
            seen.append(msgspec.json.decode(update.value))
            if len(seen) == 2:
                return
    task = asyncio.create_task(collect())
    await kv.put("sma_cross", msgspec.json.encode({"fast": 12, "slow": 30}))
    await asyncio.wait_for(task, 5)
    await watcher.stop()
    assert seen == [{"fast": 10, "slow": 30}, {"fast": 12, "slow": 30}]
