"""``tradebus logs``: the per-service log files of the state folder, merged by time, followed with -f."""
import json
import queue
import subprocess
import sys
import threading
import time

from tradebus.cli.logs import LogFile


def event(t: str, service: str, message: str, **extra) -> str:
    return json.dumps({"time": f"2026-12-05T10:00:{t}Z", "service": service, "instance": service, "level": "INFO",
                       "logger": f"tradebus.{service}", "message": message, **extra}) + "\n"


def tradebus(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tradebus.cli", *args], capture_output=True, text=True, timeout=60)


def state_with_logs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "order_router.log").write_text(
        event("01.000000", "order_router", "first") + "order_router: venue sim, PAPER\n"
        + event("03.000000", "order_router", "third", strategy="sma", client_order_id="c1"))
    (logs / "backtest_worker-1.log").write_text(event("02.000000", "backtest_worker", "second"))
    (logs / "backtest_worker-2.log").write_text(event("04.000000", "backtest_worker", "fourth"))
    (logs / "backtest_worker_x.log").write_text(event("05.000000", "backtest_worker_x", "fifth"))
    return tmp_path


def test_all_services_merged_by_time_in_the_human_format(tmp_path):
    state = state_with_logs(tmp_path)
    done = tradebus("logs", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "2026-12-05 10:00:01.000 INFO order_router: first",
        "order_router: order_router: venue sim, PAPER",  # a printed line goes with the event before it
        "2026-12-05 10:00:02.000 INFO backtest_worker: second",
        "2026-12-05 10:00:03.000 INFO order_router: third  strategy=sma client_order_id=c1",
        "2026-12-05 10:00:04.000 INFO backtest_worker: fourth",
        "2026-12-05 10:00:05.000 INFO backtest_worker_x: fifth",
    ]


def test_one_service_its_instances_only_and_the_last_lines(tmp_path):
    state = state_with_logs(tmp_path)
    done = tradebus("logs", "backtest_worker", "--state-dir", str(state), "--json")
    assert [json.loads(line)["message"] for line in done.stdout.splitlines()] == ["second", "fourth"]
    last = tradebus("logs", "-n", "2", "--state-dir", str(state))
    assert [line.split(": ", 1)[1] for line in last.stdout.splitlines()] == ["fourth", "fifth"]
    none = tradebus("logs", "-n", "0", "--state-dir", str(state))
    assert none.returncode == 0 and none.stdout == ""


def test_a_service_without_logs_and_a_folder_without_logs_are_errors(tmp_path):
    state = state_with_logs(tmp_path)
    unknown = tradebus("logs", "market_data", "--state-dir", str(state))
    assert unknown.returncode == 2
    assert "no logs of market_data" in unknown.stderr and "backtest_worker-1, backtest_worker-2" in unknown.stderr
    empty = tradebus("logs", "--state-dir", str(tmp_path / "nothing"))
    assert empty.returncode == 1 and "`tradebus up` writes them" in empty.stderr
    bad = tradebus("logs", "-n", "-3", "--state-dir", str(state))
    assert bad.returncode == 2 and "not a number of lines" in bad.stderr


class Lines:
    """The lines a process prints, gathered by a thread (a selector misses lines already buffered)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def next(self, count: int, timeout: float = 60.0) -> list[str]:
        """Up to ``count`` more lines (the deadline only guards against a hang)."""
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while len(lines) < count:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            lines.append(line)
        return lines


def test_follow_prints_new_lines_new_files_and_a_restart_into_the_same_file(tmp_path):
    state = state_with_logs(tmp_path)
    logs = state / "logs"
    proc = subprocess.Popen([sys.executable, "-m", "tradebus.cli", "logs", "-f", "-n", "1", "--state-dir", str(state),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = Lines(proc)
    try:
        assert [json.loads(line)["message"] for line in lines.next(1)] == ["fifth"]
        with open(logs / "order_router.log", "a") as f:
            f.write(event("06.000000", "order_router", "sixth")[:20])  # half a line: not printed yet
            f.flush()
            (logs / "market_data.log").write_text(event("07.000000", "market_data", "seventh"))
            got = lines.next(1)
            assert [json.loads(line)["message"] for line in got] == ["seventh"]
            f.write(event("06.000000", "order_router", "sixth")[20:])
        assert [json.loads(line)["message"] for line in lines.next(1)] == ["sixth"]
        (logs / "market_data.log").write_text(event("08.000000", "market_data", "eighth"))  # replaced, shorter
        assert [json.loads(line)["message"] for line in lines.next(1)] == ["eighth"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_log_file_is_read_once_line_by_line(tmp_path):
    path = tmp_path / "svc.log"
    path.write_bytes(event("01.000000", "svc", "one").encode() + b"plain \xff line\n{\"time\": \"2")
    log = LogFile(path)
    first = log.read_new()
    assert [(e.name, e.event is not None, e.time) for e in first] == [
        ("svc", True, "2026-12-05T10:00:01.000000Z"), ("svc", False, "2026-12-05T10:00:01.000000Z")]
    assert first[1].line == "plain \ufffd line"
    assert log.read_new() == []
    with path.open("ab") as f:
        f.write(b'026-12-05T10:00:02Z", "message": "two"}\n')
    (second,) = log.read_new()
    assert second.event["message"] == "two"
