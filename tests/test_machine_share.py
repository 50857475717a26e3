"""The test processes' machine share (tests/conftest.py): an `alone` test runs with no other test beside it."""

import threading
import time
import uuid

from tests.conftest import machine_share


def test_an_alone_test_waits_for_the_running_test_and_holds_back_the_next(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)
    events = []

    def test(name, alone, hold_s):
        with machine_share(alone):
            events.append(f"{name} starts")
            time.sleep(hold_s)
            events.append(f"{name} ends")

    running = threading.Thread(target=test, args=("running", False, 0.4))
    running.start()
    time.sleep(0.1)
    alone = threading.Thread(target=test, args=("alone", True, 0.2))
    alone.start()
    time.sleep(0.1)
    later = threading.Thread(target=test, args=("later", False, 0.0))  # asks while the alone test waits
    later.start()
    for thread in (running, alone, later):
        thread.join(10)
    assert events == ["running starts", "running ends", "alone starts", "alone ends", "later starts", "later ends"]


def test_without_test_processes_nothing_is_locked(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID", raising=False)
    with machine_share(True), machine_share(True):  # would wait for itself if it locked
        pass
