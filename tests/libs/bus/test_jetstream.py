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


async def test_bus_methods_cover_streams_consumers_and_stores(bus):
    """What services used raw js for: store with ack (duplicate flag, expected stream), stream
    counts, bound and ephemeral pull consumers, reading a stream in order, KV buckets."""
    await bus.declare_stream(api.StreamConfig(name="TEST_BUSAPI", subjects=["busapi.>"]))
    first = await bus.js_store("busapi.a", b"1", headers={"Nats-Msg-Id": "x1"}, stream="TEST_BUSAPI")
    again = await bus.js_store("busapi.a", b"1", headers={"Nats-Msg-Id": "x1"}, stream="TEST_BUSAPI")
    assert (first.seq, first.duplicate, again.seq, again.duplicate) == (1, False, 1, True)
    await bus.js_publish("busapi.b", b"2")
    with pytest.raises(Exception, match="stream"):  # the server refuses: another stream holds the subject
        await bus.js_store("busapi.a", b"3", stream="NOT_THIS_ONE")
    info = await bus.stream_info("TEST_BUSAPI", subjects_filter="busapi.>")
    assert info.state.messages == 2 and info.state.subjects == {"busapi.a": 1, "busapi.b": 1}

    ephemeral = await bus.pull_subscribe("TEST_BUSAPI", subject="busapi.b",
                                         config=api.ConsumerConfig(ack_policy=api.AckPolicy.NONE))
    assert [m.data for m in await ephemeral.fetch(1, timeout=2)] == [b"2"]
    await bus.declare_consumer("TEST_BUSAPI", api.ConsumerConfig(durable_name="busapi_work"))
    bound = await bus.pull_subscribe("TEST_BUSAPI", "busapi_work")
    assert [m.data for m in await bound.fetch(2, timeout=2)] == [b"1", b"2"]
    await bus.delete_consumer("TEST_BUSAPI", "busapi_work")

    ordered = await bus.read_stream("TEST_BUSAPI")
    assert [(await ordered.next_msg(timeout=2)).subject for _ in range(2)] == ["busapi.a", "busapi.b"]
    await ordered.unsubscribe()

    kv = await bus.key_value(subjects.KV_STRATEGY_PARAMS)  # created on first use
    await kv.put("busapi", b"v")
    assert (await (await bus.key_value(subjects.KV_STRATEGY_PARAMS)).get("busapi")).value == b"v"


async def test_bus_methods_for_core_nats_replies_and_discovery(bus):
    from tradebus.proto import ServiceCommand
    from tradebus.proto.codec import encode

    seen = []
    answer = ServiceCommand(service="busapi", command="pong")

    async def echo(msg):
        seen.append(msg.data)
        await bus.respond(msg, answer)  # no reply subject on a plain publish: nothing is sent

    sub = await bus.nc.subscribe("busapi_core.echo", cb=echo)
    await bus.publish_bytes("busapi_core.echo", b"raw")
    ask = ServiceCommand(service="busapi", command="ping")
    assert await bus.request("busapi_core.echo", ask, ServiceCommand) == answer
    await bus.flush()
    assert seen == [b"raw", encode(ask)]
    await sub.unsubscribe()
    service = await bus.add_service(name="busapi_svc", version="0.0.1")
    assert [p["name"] for p in await bus.discover("PING", "busapi_svc", timeout=0.3)] == ["busapi_svc"]
    assert ":" in bus.connected_url
    await service.stop()
