"""backtest_worker settings: ``services.backtest_worker.settings`` of the deployment file."""
from __future__ import annotations

import os

from tradebus.config import BackoffSettings, Settings

__all__ = ["WorkerSettings", "CONNECTION_BACKOFF"]

# Fetching a dataset or publishing a result through a NATS reconnection: retried for up to ack_wait.
CONNECTION_BACKOFF = BackoffSettings(initial=0.1, multiplier=2.0, cap=2.0)


class WorkerSettings(Settings):
    """``services.backtest_worker.settings`` of the deployment file (command-line flags win).

    batch: jobs fetched at once (0: 16 per core); threads: engine threads per run_batch (0: all
    cores); ack_wait: seconds the server waits for an ack or heartbeat before redelivering (keep
    it above the slowest job; heartbeats go out every third of it); attempts: runs of a failing
    job before its dead letter; retry_delay: seconds before a failed job is redelivered;
    cache_dir: dataset cache ("" = $TRADEBUS_CACHE_DIR or ~/.cache/tradebus/datasets).
    The consumer is shared: the last worker to start sets its ack_wait and attempts.
    """

    batch: int = 0
    threads: int = 0
    ack_wait: float = 60.0
    attempts: int = 3
    retry_delay: float = 1.0
    cache_dir: str = ""
    max_ack_pending: int = 1000
    fetch_timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.batch < 0 or self.threads < 0:
            raise ValueError("batch and threads must be >= 0")
        if self.ack_wait <= 0 or self.fetch_timeout <= 0 or self.retry_delay < 0:
            raise ValueError("ack_wait and fetch_timeout must be > 0, retry_delay >= 0")
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")

    @property
    def batch_size(self) -> int:
        return self.batch or 16 * (os.cpu_count() or 1)
