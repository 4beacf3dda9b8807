"""NatsCluster: real nats-servers routed on loopback; stable node names and stores across restarts."""
from __future__ import annotations

import pytest
from nats.js import api

from tradebus.bus import Bus, NatsCluster, NatsConfig
from tradebus.bus.jetstream import replication_lag, wait_jetstream, wait_replicated


def test_fewer_than_three_nodes_is_refused():
    with pytest.raises(ValueError, match="at least 3 nodes"):
        NatsCluster(2)


def info(replicas: int, leader: str | None, peers: list[api.PeerInfo]) -> api.StreamInfo:
    return api.StreamInfo(config=api.StreamConfig(name="S", num_replicas=replicas), state=api.StreamState(
        messages=0, bytes=0, first_seq=0, last_seq=0, consumer_count=0),
        cluster=api.ClusterInfo(leader=leader, replicas=peers))


def test_replication_lag_names_what_is_missing():
    current = api.PeerInfo(name="b", current=True, offline=False)
    assert replication_lag(info(1, None, [])) is None
    assert replication_lag(info(3, None, [current])) == "no leader"
    assert replication_lag(info(3, "a", [current, api.PeerInfo(name="c", current=False)])) == "replicas not current: c"
    assert replication_lag(info(3, "a", [current, api.PeerInfo(name="c", current=True, offline=True)])) == \
        "replicas not current: c"
    assert replication_lag(info(3, "a", [current])) == "2 of 3 replicas placed"
    assert replication_lag(info(3, "a", [current, api.PeerInfo(name="c", current=True)])) is None


async def test_a_cluster_started_again_on_its_state_folder_keeps_its_streams(tmp_path):
    """New ports, same node names and stores: the replicated stream and its messages are back."""
    first = NatsCluster(3, state_dir=tmp_path / "nats").start()
    try:
        bus = await Bus.connect(NatsConfig(url=first.url, stream_replicas=3))
        await wait_jetstream(bus.js)
        await bus.declare_stream(api.StreamConfig(name="KEPT", subjects=["kept.>"]))
        await wait_replicated(bus.js, ["KEPT"])
        for i in range(5):
            await bus.js_publish(f"kept.{i}", b"x")
        await bus.close()
    finally:
        first.stop()
    assert sorted(p.name for p in (tmp_path / "nats").iterdir()) == ["node-1", "node-2", "node-3"]

    second = NatsCluster(3, state_dir=tmp_path / "nats").start()
    try:
        bus = await Bus.connect(second.url)
        await wait_jetstream(bus.js)
        kept = (await wait_replicated(bus.js, ["KEPT"]))["KEPT"]
        assert kept.config.num_replicas == 3 and kept.state.messages == 5
        assert {kept.cluster.leader, *(p.name for p in kept.cluster.replicas)} == {n.server_name for n in second.nodes}
        await bus.close()
    finally:
        second.stop()
    assert (tmp_path / "nats" / "node-1").is_dir()  # a given state folder is kept


async def test_declaring_on_a_cluster_that_is_still_forming_waits_for_it(tmp_path):
    """Right after start there is no meta leader: a Bus with three replicas declares once there is one."""
    cluster = NatsCluster(3).start()
    state = cluster.state_dir
    try:
        assert [n.server_name for n in cluster.nodes] == ["tradebus-1", "tradebus-2", "tradebus-3"]
        assert len({n.port for n in cluster.nodes}) == 3
        bus = await Bus.connect(NatsConfig(url=cluster.url, stream_replicas=3))
        declared = await bus.declare_all()
        assert {name: info.config.num_replicas for name, info in declared.streams.items()} == \
            {"ORDERS": 3, "BT_JOBS": 3, "BT_RESULTS": 3}
        infos = await wait_replicated(bus.js)
        assert {info.config.num_replicas for info in infos.values()} == {3}  # the KV buckets and object store too
        await bus.close()
    finally:
        cluster.stop()
    assert not state.exists()  # a temporary state folder is removed
