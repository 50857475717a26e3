"""The microbenchmark gives positive, sane peaks in a few seconds and stores them with the hardware row."""

from __future__ import annotations

import time

import pytest

from kit import microbench, storage
from kit.errors import ConfigError


@pytest.fixture(scope="module")
def cpu_peaks() -> tuple[microbench.Peaks, float]:
    """CPU peaks for fp32 and bf16 (fp16 matmul is emulated and slow on many CPUs), with the wall time taken."""
    start = time.perf_counter()
    peaks = microbench.measure_peaks("cpu", precisions=("fp32", "bf16"), budget_s=0.2)
    return peaks, time.perf_counter() - start


def test_cpu_peaks_are_positive_and_sane(cpu_peaks: tuple[microbench.Peaks, float]) -> None:
    peaks, wall_s = cpu_peaks
    assert peaks.flops_per_s["fp32"] > 1e9  # more than 1 GFLOP/s
    assert peaks.flops_per_s["bf16"] > 0
    assert peaks.mem_bandwidth_bytes_per_s > 100e6  # more than 100 MB/s
    assert peaks.flops_per_s["fp32"] < 1e14 and peaks.mem_bandwidth_bytes_per_s < 1e13  # not a timing glitch
    assert peaks.seconds <= wall_s


@pytest.mark.alone  # beside a notebook that measures, the same microbenchmark has taken 42 s
def test_the_microbenchmark_takes_seconds() -> None:
    start = time.perf_counter()
    peaks = microbench.measure_peaks("cpu", precisions=("fp32", "bf16"), budget_s=0.2)
    wall_s = time.perf_counter() - start
    assert peaks.seconds <= wall_s < 15  # about 8 s on a quiet 2-vCPU AMD EPYC VM, depthwise costs included


def test_peaks_round_trip_through_the_hardware_row(cpu_peaks: tuple[microbench.Peaks, float], tmp_path) -> None:
    peaks, _ = cpu_peaks
    con = storage.connect(tmp_path / "b.duckdb")
    hardware_id = microbench.store_peaks(con, peaks, hardware_id="hw1")
    storage.set_hardware_peaks(con, "hw1", {"cuda": {"flops_per_s": {"fp16": 1e14}, "mem_bandwidth_bytes_per_s": 1e12}})
    table = microbench.stored_peaks(con).set_index(["platform", "precision"])
    assert hardware_id == "hw1"
    assert table.loc[("cpu", "fp32"), "peak_flops_per_s"] == peaks.flops_per_s["fp32"]
    assert table.loc[("cuda", "fp16"), "mem_bandwidth_bytes_per_s"] == 1e12  # merged, cpu entry kept
    column = con.execute("SELECT mem_bandwidth_bytes_per_s FROM hardware WHERE hardware_id = 'hw1'").fetchone()[0]
    assert column == peaks.mem_bandwidth_bytes_per_s  # the host bandwidth column is not cleared by a GPU entry


def test_start_run_keeps_stored_peaks(tmp_path) -> None:
    con = storage.connect(tmp_path / "b.duckdb")
    storage.set_hardware_peaks(con, "hw1", {"cpu": {"flops_per_s": {"fp32": 1e11}}}, 2e10)
    storage.start_run(con, "r1", {}, {"hardware": {"hardware_id": "hw1", "hostname": "h"}, "env_id": "e"})
    assert microbench.stored_peaks(con)["peak_flops_per_s"].tolist() == [1e11]


def test_bad_platform_or_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no microbenchmark for platform 'tpu'"):
        microbench.measure_peaks("tpu")
    with pytest.raises(ConfigError, match="unknown matmul precision"):
        microbench.measure_peaks("cpu", precisions=("fp64",))


def test_cmd_microbench_names_a_bad_platform_before_measuring_any(tmp_path, capsys) -> None:
    from kit.cli import main

    db = tmp_path / "b.duckdb"
    assert main(["microbench", "--platforms", "cpu", "openvino", "--db", str(db)]) == 2
    assert "no microbenchmark for platform(s) ['openvino']" in capsys.readouterr().err
    assert not db.exists()  # nothing measured, nothing stored


@pytest.mark.gpu
def test_cuda_peaks() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or torch.version.hip:
        pytest.skip("no CUDA device")
    peaks = microbench.measure_peaks("cuda", budget_s=0.2)
    assert peaks.flops_per_s["fp16"] > peaks.flops_per_s["fp32"] > 1e11
    assert peaks.mem_bandwidth_bytes_per_s > 1e11


def test_cmd_microbench_stores_and_prints(cpu_peaks, tmp_path, monkeypatch, capsys) -> None:
    import argparse

    peaks, _ = cpu_peaks
    monkeypatch.setattr(microbench, "measure_peaks", lambda platform, budget_s: peaks)  # measured by the fixture
    parser = argparse.ArgumentParser()
    microbench.add_microbench_arguments(parser)
    db = tmp_path / "b.duckdb"
    assert microbench.cmd_microbench(parser.parse_args(["--db", str(db)])) == 0
    assert "GFLOP/s" in capsys.readouterr().out
    con = storage.connect(db, read_only=True)
    assert set(microbench.stored_peaks(con)["precision"]) == set(peaks.flops_per_s)
    with pytest.raises(ConfigError, match="budget-s"):
        microbench.cmd_microbench(parser.parse_args(["--budget-s", "0"]))


def test_settings_are_checked_before_any_work() -> None:
    microbench.check_settings(["cpu", "cuda"], 0.2)
    with pytest.raises(ConfigError, match="no microbenchmark for platform"):
        microbench.check_settings(["cpu", "openvino"], 0.2)
    with pytest.raises(ConfigError, match="budget_s"):
        microbench.check_settings(["cpu"], 0)


def test_ensure_peaks_measures_once_and_names_absent_platforms(cpu_peaks, tmp_path, monkeypatch) -> None:
    import kit.backends

    peaks, _ = cpu_peaks
    calls: list[str] = []

    def fake_measure(platform: str, budget_s: float) -> microbench.Peaks:
        calls.append(platform)
        return peaks

    class Absent:
        def available(self) -> tuple[bool, str]:
            return False, "no device here"

    real = kit.backends.get_backend
    monkeypatch.setattr(microbench, "measure_peaks", fake_measure)
    monkeypatch.setattr(kit.backends, "get_backend", lambda name: real(name) if name == "cpu" else Absent())
    con = storage.connect(tmp_path / "b.duckdb")
    first = microbench.ensure_peaks(con, ("cpu", "cuda"), budget_s=0.1)
    second = microbench.ensure_peaks(con, ("cpu", "cuda"), budget_s=0.1)
    assert calls == ["cpu"] and first.attrs["measured_now"] == ["cpu"] and second.attrs["measured_now"] == []
    assert second.attrs["skipped"] == {"cuda": "unavailable: no device here"}
    assert set(second["platform"]) == {"cpu"} and (second["hardware_id"] == second.attrs["this_machine"]).all()
    with pytest.raises(ConfigError, match="budget_s"):
        microbench.ensure_peaks(con, ("cpu",), budget_s=-1)
