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


def test_a_temporary_cluster_state_is_removed_on_stop():
    cluster = NatsCluster(3).start()
    state = cluster.state_dir
    assert [n.server_name for n in cluster.nodes] == ["tradebus-1", "tradebus-2", "tradebus-3"]
    assert len({n.port for n in cluster.nodes}) == 3
    cluster.stop()
    assert not state.exists()
