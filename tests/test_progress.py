"""Sweep progress through a file: written by the sweep, read and echoed by `benchkit report`."""

from __future__ import annotations

import time

from kit import progress


def test_report_writes_nothing_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    progress.report("sweep r", 1, 4, "stored a: ok", time.monotonic())
    assert list(tmp_path.iterdir()) == []


def test_report_writes_the_state_with_an_eta_from_the_pace(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(path))
    progress.report("sweep r", 1, 4, "stored a: ok", time.monotonic() - 10)
    state = progress.read(path)
    assert state["done"] == 1 and state["total"] == 4 and 29 < state["eta_s"] < 32  # 10 s for a quarter
    progress.report("sweep r", 1, 4, "round 2/10 of bert", time.monotonic() - 10, fraction=0.5)
    assert 9 < progress.read(path)["eta_s"] < 11
    assert progress.describe(progress.read(path)) == ("sweep r: 1/4 configurations done (round 2/10 of bert), "
                                                      "about 10 s left")
    assert [p.name for p in tmp_path.iterdir()] == ["progress.json"]  # no partial file left behind
    assert progress.read(tmp_path / "missing.json") is None


def test_durations_read_as_a_person_would_say_them():
    assert [progress.duration(s) for s in (None, 4.4, 75, 3600 + 5 * 60)] == ["?", "4 s", "1 min 15 s", "1 h 05 min"]


def test_the_watcher_echoes_each_new_state_once(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(path))
    lines: list[str] = []
    with progress.Watcher(path, lines.append, interval_s=0.05):
        progress.report("sweep r", 0, 2, "round 1/4 of bert", time.monotonic())
        time.sleep(0.3)
        progress.report("sweep r", 2, 2, "stored b: ok", time.monotonic())
    assert len(lines) == 2 and lines[0].startswith("sweep r: 0/2") and "stored b: ok" in lines[1]
