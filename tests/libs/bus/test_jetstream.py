import asyncio

import msgspec
import pytest
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


async def test_js_publish_stores_dedups_and_reports_failures(bus):
    import nats.errors
    import nats.js.errors

    await declare_stream(bus.js, api.StreamConfig(name="TEST_FASTPUB", subjects=["fastpub.>"]))
    seqs = await asyncio.gather(*(bus.js_publish(f"fastpub.{i}", b"x%d" % i, headers={"Nats-Msg-Id": f"m{i}"})
                                  for i in range(50)))
    assert sorted(seqs) == list(range(1, 51))
    again = await bus.js_publish("fastpub.7", b"x7", headers={"Nats-Msg-Id": "m7"})  # a duplicate: not stored again
    assert again == seqs[7]
    assert (await bus.js.stream_info("TEST_FASTPUB")).state.messages == 50
    assert (await bus.js.get_msg("TEST_FASTPUB", seqs[3])).data == b"x3"

    with pytest.raises(nats.js.errors.NoStreamResponseError):  # no stream holds the subject
        await bus.js_publish("nostream.here", b"x")
    silent = await bus.nc.subscribe("fastpub_silent.x")  # interest, but nobody ever answers
    with pytest.raises(nats.errors.TimeoutError):
        await bus.js_publish("fastpub_silent.x", b"x", timeout=0.2)
    await silent.unsubscribe()
    await declare_stream(bus.js, api.StreamConfig(name="TEST_FASTPUB_LIMIT", subjects=["fastlim.>"], max_msgs=1,
                                                  discard=api.DiscardPolicy.NEW))
    await bus.js_publish("fastlim.a", b"1")
    with pytest.raises(nats.js.errors.APIError):  # the stream refuses: the server's error comes back
        await bus.js_publish("fastlim.a", b"2")
    assert not bus._acks.pending  # nothing left waiting


async def test_kv_put_through_js_publish_is_a_normal_kv_entry(bus):
    declared = await declare_all(bus.js)
    kv = declared.kv[subjects.KV_ROUTER_STATE]
    rev = await bus.kv_put(subjects.KV_ROUTER_STATE, "fast.key", b"v1")
    entry = await kv.get("fast.key")
    assert entry.value == b"v1" and entry.revision == rev
