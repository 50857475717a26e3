"""optimum-benchmark results as Records: the four real 0.6.0 reports in tests/fixtures import whole, throughput is
recomputed from the latencies (not the tool's training figure), bad folders are one line, and imports are idempotent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kit import storage
from kit.cli import main
from kit.errors import ConfigError
from kit.optimum_benchmark import read_optimum

FIXTURES = Path(__file__).parent / "fixtures" / "optimum-benchmark-0.6.0"
FOLDERS = sorted(FIXTURES.iterdir())


def test_the_four_reports_become_records_with_their_latencies_and_origin():
    records = {folder.name: read_optimum(folder) for folder in FOLDERS}
    assert len(records) == 4
    for folder, record in records.items():
        report = json.loads((FIXTURES / folder / "benchmark_report.json").read_text())
        phase = report["train" if record.mode == "training" else "forward"]
        assert list(record.samples_s) == phase["latency"]["values"]
        assert record.latency_p50_s == pytest.approx(np.percentile(phase["latency"]["values"], 50))
        assert record.extra["origin"] == "optimum-benchmark" and record.extra["tool_version"] == "0.6.0"
        assert record.converged is None and not record.noisy and record.size == "external"
        assert record.throughput_items_per_s == pytest.approx(record.batch_size / np.mean(record.samples_s), rel=1e-3)
    train = records["ob_train_bs2"]
    assert train.mode == "training" and train.batch_size == 2 and train.seq_len == 128
    # 0.6.0 reports steps x batch / mean step latency; the stored throughput is batch / mean step latency
    assert train.extra["reported_throughput"] == pytest.approx(train.n_samples * train.throughput_items_per_s, rel=1e-3)
    memory = records["ob_infer_mem_bs4"]
    assert memory.peak_memory_bytes == int(492.924928e6) and memory.startup_s > 0 and memory.first_inference_s > 0


def test_import_optimum_stores_all_once_and_results_show_the_origin(tmp_path, capsys):
    db = tmp_path / "o.duckdb"
    assert main(["import-optimum", *map(str, FOLDERS), "--db", str(db)]) == 0
    assert main(["import-optimum", *map(str, FOLDERS), "--db", str(db)]) == 0  # the same results again: stored once
    assert "imported 4 records" in capsys.readouterr().out
    con = storage.connect(db, read_only=True)
    assert len(storage.load_records(con)) == 4
    con.close()
    assert main(["results", "--db", str(db)]) == 0
    assert capsys.readouterr().out.count("imported from optimum-benchmark 0.6.0") == 4


@pytest.mark.parametrize("damage, match", [
    (lambda d: (d / "benchmark_report.json").unlink(), "no benchmark_report.json"),
    (lambda d: (d / "benchmark_config.json").write_bytes(b"\x00\xff"), "not a JSON file"),
    (lambda d: (d / "benchmark_config.json").write_text('{"scenario": {"name": "energy_star"}}'),
     "scenario 'energy_star' is not imported"),
])
def test_a_bad_folder_is_one_line_and_nothing_is_stored(tmp_path, capsys, damage, match):
    bad = tmp_path / "bad"
    shutil.copytree(FOLDERS[0], bad)
    damage(bad)
    with pytest.raises(ConfigError, match=match):
        read_optimum(bad)
    db = tmp_path / "o.duckdb"
    assert main(["import-optimum", str(FOLDERS[1]), str(bad), "--db", str(db)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not db.exists()
