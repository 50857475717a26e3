import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# no per-example deadline: on a shared 2-core machine running two test processes, a slow example is load, not a fault
settings.register_profile("shared", deadline=None)
settings.load_profile("shared")


@contextlib.contextmanager
def machine_share(alone: bool):
    """Under pytest-xdist, hold the machine shared with the other test processes, or alone (every other test finishes
    first and none starts meanwhile): a file lock per test run, with a turnstile so an `alone` test is not starved."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        yield
        return
    stem = Path(tempfile.gettempdir()) / f"benchkit-tests-{run}"
    with open(f"{stem}.turn", "a") as turn, open(f"{stem}.share", "a") as share:
        fcntl.flock(turn, fcntl.LOCK_EX)
        fcntl.flock(share, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        fcntl.flock(turn, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(share, fcntl.LOCK_UN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test marked `alone` (its verdict is a timing that needs quiet cores) runs with no other test beside it,
    fixtures included."""
    with machine_share(item.get_closest_marker("alone") is not None):
        yield


FIRST = ("test_notebooks.py",)  # the longest tests (a notebook each, up to minutes)


def pytest_collection_modifyitems(items):
    """Tests marked `alone` run first, while the other worker is on short tests (later, one would wait for a notebook
    to finish); then the modules in FIRST, so that no worker is left with one of their long tests at the end while
    the other has nothing to do; then the rest, each module in its own order."""
    items.sort(key=lambda item: (item.get_closest_marker("alone") is None, item.path.name not in FIRST))
