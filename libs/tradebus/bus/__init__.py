"""The NATS bus: connection, typed publish/subscribe, JetStream, services, embedded server."""
from tradebus.config import NatsConfig

from .client import BadInput, Batcher, Bus, BusUnreachable, PubAck, RequestError
from .cluster import NatsCluster
from .discovery import discover
from .server import EmbeddedNats, NatsServerError, find_nats_server, free_port

__all__ = [
    "Bus",
    "BusUnreachable",
    "BadInput",
    "Batcher",
    "RequestError",
    "PubAck",
    "NatsConfig",
    "EmbeddedNats",
    "NatsCluster",
    "NatsServerError",
    "find_nats_server",
    "free_port",
    "discover",
]
