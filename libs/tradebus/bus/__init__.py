"""The NATS bus: connection settings, typed publish/subscribe, JetStream, services, embedded server."""
from .client import BadInput, Batcher, Bus, RequestError
from .config import NatsConfig
from .discovery import discover
from .server import EmbeddedNats, NatsServerError, find_nats_server, free_port

__all__ = [
    "Bus",
    "BadInput",
    "Batcher",
    "RequestError",
    "NatsConfig",
    "EmbeddedNats",
    "NatsServerError",
    "find_nats_server",
    "free_port",
    "discover",
]
