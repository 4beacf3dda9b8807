import asyncio
import os
import sys

from tradebus.config import BackoffSettings, SupervisorConfig
from tradebus.supervisor import ChildSpec, Supervisor

FAST = SupervisorConfig(max_restarts=2, backoff=BackoffSettings(initial=0.05, multiplier=2.0, cap=0.2), stable_after=60,
                        stop_timeout=2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def wait_until(predicate, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_a_crashing_child_is_restarted_then_given_up_on():
    sup = Supervisor([ChildSpec("crasher", [sys.executable, "-c", "import sys; sys.exit(3)"])], FAST)
    await sup.start()
    child = sup.children["crasher"]
    await wait_until(lambda: child.state == "failed")
    assert child.restarts == 2 and child.last_exit == 3
    await sup.stop()


async def test_a_killed_child_comes_back_and_stop_leaves_no_process():
    sup = Supervisor([ChildSpec("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])], FAST)
    await sup.start()
    child = sup.children["sleeper"]
    first = child.pid
    os.kill(first, 9)
    await wait_until(lambda: child.pid != first and child.state == "running")
    second = child.pid
    await sup.stop()
    assert not alive(first) and not alive(second)
    assert child.state == "stopped"


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    sup = Supervisor([ChildSpec("stubborn", [sys.executable, "-c", code])], SupervisorConfig(stop_timeout=0.5),
                     log_dir=str(tmp_path))
    await sup.start()
    log = tmp_path / "stubborn.log"
    await wait_until(lambda: log.exists() and "ready" in log.read_text(), timeout=60)  # SIGTERM is ignored from here on
    pid = sup.children["stubborn"].pid
    await sup.stop()
    assert not alive(pid)
    assert sup.children["stubborn"].last_exit == -9


async def test_each_run_starts_a_fresh_log_file_and_keeps_the_previous_one(tmp_path):
    (tmp_path / "talker.log").write_text("older run\n")
    (tmp_path / "talker.log.1").write_text("oldest run\n")
    sup = Supervisor([ChildSpec("talker", [sys.executable, "-c", "print('this run', flush=True)"])], FAST,
                     log_dir=str(tmp_path))
    await sup.start()
    child = sup.children["talker"]
    await wait_until(lambda: child.state == "failed", timeout=60)  # exits 0 each time: restarted, then given up
    await sup.stop()
    assert (tmp_path / "talker.log.1").read_text() == "older run\n"
    assert (tmp_path / "talker.log").read_text() == "this run\n" * 3  # its restarts append to the same file
