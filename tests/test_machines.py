"""Across machines: labels from the fingerprint, speed-ups against a baseline machine, and the cheapest machine of a
fleet under a p99 bound, on a store merged from two test-fixture machines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kit import storage
from kit.analysis.machines import BETWEEN_RUNS, machine_speedups, machines_table
from kit.errors import ConfigError
from kit.merge import merge_stores
from kit.recommend.fleet import fleet_ranking
from kit.records import Record


def record(run_id: str, batch_size: int, scale: float, seed: int) -> Record:
    """10 rounds x 6 calls of tiny BERT around 10 ms x batch x scale, with a 1 % spread."""
    rng = np.random.default_rng(seed)
    rounds = [i // 6 for i in range(60)]
    samples = [0.01 * batch_size * scale * rng.lognormal(0, 0.01) for _ in rounds]
    return Record.from_samples(samples, sample_rounds=rounds, run_id=run_id,
                               config_key=f"bert|tiny|inference|cpu|fp32|bs{batch_size}|seqdefault", model="bert",
                               family="bert", size="tiny", mode="inference", platform="cpu", device="cpu",
                               precision="fp32", batch_size=batch_size, peak_memory_bytes=2**28)


def fixture_machine(path, machine: str, scale: float, batch_sizes: list[int]) -> None:
    """A store measured on test-fixture machine `machine` (hardware id fixture-<machine>), every call x scale."""
    con = storage.connect(path)
    environment = {"env_id": f"env-{machine}", "hardware": {"hardware_id": f"fixture-{machine}", "hostname": machine,
                                                             "cpu_model": f"Fixture CPU {machine}",
                                                             "cores_logical": 8}}
    storage.start_run(con, f"run-{machine}", {"models": ["bert"]}, environment)
    for seed, batch_size in enumerate(batch_sizes):
        storage.insert_record(con, record(f"run-{machine}", batch_size, scale, seed))
    storage.finish_run(con, f"run-{machine}")
    con.close()


@pytest.fixture
def fleet(tmp_path):
    """Machine a (three batch sizes) and machine b (twice as fast, two of them), merged into one store."""
    fixture_machine(tmp_path / "a.duckdb", "a", 1.0, [1, 2, 4])
    fixture_machine(tmp_path / "b.duckdb", "b", 0.5, [1, 2])
    into = tmp_path / "fleet.duckdb"
    merge_stores([tmp_path / "a.duckdb", tmp_path / "b.duckdb"], into)
    con = storage.connect(into, read_only=True)
    yield con
    con.close()


def test_machines_are_labelled_by_their_fingerprint(fleet):
    machines = machines_table(fleet)
    assert list(machines["hardware_id"]) == ["fixture-a", "fixture-b"]  # most ok results first
    assert list(machines["machine"]) == ["Fixture CPU a · 8 cores", "Fixture CPU b · 8 cores"]
    assert list(machines["ok_results"]) == [3, 2] and list(machines["runs"]) == [1, 1]


def test_speedups_against_a_baseline_machine_carry_an_interval_between_runs(fleet):
    table = machine_speedups(fleet)  # baseline: the machine with the most results
    assert list(table["batch_size"]) == [1, 2] and set(table["machine"]) == {"Fixture CPU b · 8 cores"}
    assert np.allclose(table["speedup"], 2.0, rtol=0.02)
    assert (table["speedup_ci_low"] > 1.9).all() and (table["speedup_ci_high"] < 2.1).all()
    assert (table["method"] == "p10 rounds").all() and (table["note"] == BETWEEN_RUNS).all()
    reverse = machine_speedups(fleet, baseline_machine="Fixture CPU b · 8 cores")
    assert np.allclose(reverse["speedup"], 0.5, rtol=0.02)
    with pytest.raises(ConfigError, match="unknown machine 'fixture-z'; known: fixture-a, fixture-b"):
        machine_speedups(fleet, baseline_machine="fixture-z")


def test_the_fleet_ranking_is_by_cost_under_a_p99_bound(fleet):
    prices = {"fixture-a": 1.0, "Fixture CPU b · 8 cores": 3.0}
    table = fleet_ranking(fleet, "bert", prices, latency_bound_ms=25)
    ranked = table[table["feasible"]]
    # items per hour = batch / latency x 3600; b is twice as fast at three times the price
    expected = {(m, b): price / (b / (0.01 * b * scale) * 3600) * 1e6
                for m, price, scale in (("fixture-a", 1.0, 1.0), ("fixture-b", 3.0, 0.5)) for b in (1, 2)}
    for _, row in ranked.iterrows():
        assert row["cost_per_million"] == pytest.approx(expected[(row["hardware_id"], row["batch_size"])], rel=0.03)
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert ranked["cost_per_million"].is_monotonic_increasing and ranked.iloc[0]["hardware_id"] == "fixture-a"
    over = table[table["batch_size"] == 4].iloc[0]  # 40 ms on machine a: over the 25 ms bound
    assert not over["feasible"] and over["reason"].startswith("p99 latency 40") and pd.isna(over["rank"])
    unpriced = fleet_ranking(fleet, "bert", {"fixture-a": 1.0})
    assert (unpriced.loc[unpriced["hardware_id"] == "fixture-b", "reason"] == "no hourly price for this machine").all()
    with pytest.raises(ConfigError, match="unknown machine 'laptop' in machine_prices"):
        fleet_ranking(fleet, "bert", {"laptop": 1.0})
    with pytest.raises(ConfigError, match="hourly price of machine 'fixture-a' must be a non-negative number"):
        fleet_ranking(fleet, "bert", {"fixture-a": -1})



def test_machine_settings_are_checked_before_any_work(fleet):
    from kit.analysis import plan_comparison
    from kit.recommend import Request

    plan = plan_comparison(fleet, "run-b", baseline_machine="Fixture CPU a · 8 cores")
    assert plan.baseline_machine == "fixture-a"
    with pytest.raises(ConfigError, match="unknown machine 'laptop'; known: fixture-a, fixture-b"):
        plan_comparison(fleet, "run-b", baseline_machine="laptop")
    assert Request(model="bert", machine_prices={"fixture-a": 0.5}).machine_prices == {"fixture-a": 0.5}
    with pytest.raises(ConfigError, match="hourly price of machine 'fixture-a' must be a non-negative number"):
        Request(model="bert", machine_prices={"fixture-a": "cheap"})
    with pytest.raises(ConfigError, match="machine_prices must map machines to hourly prices"):
        Request(model="bert", machine_prices=[1.0])
