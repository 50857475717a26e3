"""Every notebook executes under papermill on its tiny parameters; YAML keys match the declared parameters."""

import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from kit import pipeline
from kit.errors import ConfigError
from kit.predict.budget import REPEAT_SPEEDS

NOTEBOOKS = pipeline.NOTEBOOKS
PARAMS = pipeline.PARAMETERS
STEMS = pipeline.notebook_stems()


def _declared(stem):
    return set(papermill.inspect_notebook(str(NOTEBOOKS / f"{stem}.ipynb")))


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("variant", ["yaml", "quick.yaml", "tiny.yaml"])
def test_parameter_files_match_declared_parameters(stem, variant):
    path = PARAMS / f"{stem}.{variant}"
    assert path.exists(), f"missing {path}"
    keys = set(yaml.safe_load(path.read_text()) or {})
    assert keys == _declared(stem), f"{path.name}: extra {keys - _declared(stem)}, missing {_declared(stem) - keys}"


EXPECT = {
    "01_benchmark": lambda r: (r["n_ok"] >= 1 and r["percentiles_ordered"] and r["best_throughput_items_per_s"] > 0
                               and r["drift_index"] >= 0),
    "02_comparative_analysis": lambda r: (
        r["n_speedups"] >= 1 and r["cis_ordered"] and r["exports_exist"] and r["n_ranked"] >= 1
        and r["n_history_runs"] >= 2 and r["baseline"] is not None and r["n_compared"] >= 1
        and 0 <= r["n_regressions"] <= r["n_compared"]),
    "03_training_vs_inference": lambda r: (
        r["n_pairs"] >= 1 and len(r["throughput_ratios"]) == len(r["throughput_ratios_p50"]) == r["n_pairs"]
        and all(x > 0 for x in r["throughput_ratios"] + r["throughput_ratios_p50"] + r["memory_ratios"])
        and all(0.5 <= c <= 1.0 + 1e-9 for c in r["phase_coverage"])
        and all(a > 0 and b > 0 for a, b in zip(r["first_losses"], r["last_losses"], strict=True))
        and any(r["loss_decreased"])),
    "04_prediction": lambda r: (
        r["n_train"] >= 12 and r["n_families"] >= 3 and r["n_peaks"] >= 1 and r["throughput_mape"] >= 0
        and 0 <= r["throughput_within_10"] <= 1 and 0 <= r["throughput_coverage"] <= 1
        and r["n_unmeasured_predicted"] >= 1 and r["intervals_ordered"] is True
        and r["mape_goal_met"] == (r["throughput_mape"] <= 0.10) and r["held_out_throughput_mape"] >= 0
        and r["headline"]["held_out_groups"] == "vit"
        and r["error_budget"][0]["estimate"] == "predictor, family held out"
        and r["error_budget"][0]["mape"] == pytest.approx(r["throughput_mape"])
        and (r["repeat_mape"] is None or r["repeat_mape"] >= 0)
        and [row["speed"] for row in r["repeat_table"]] == list(REPEAT_SPEEDS)
        and [row["scale"] for row in r["steady_scores"]] == ["measured", "steady"]
        and r["steady_scores"][0]["n"] == r["steady_scores"][1]["n"] >= 1 and r["steady_throughput_mape"] >= 0
        and [row["training"] for row in r["architecture_scores"]] == ["zoo families only",
                                                                      "with coverage architectures"]
        and r["architecture_scores"][0]["n"] == r["architecture_scores"][1]["n"] >= 1
        and r["architecture_scores"][1]["n_extra_training"] >= 2 and r["with_architectures_mape"] >= 0
        and sum(row["n"] for row in r["steady_floor"]) == r["steady_scores"][1]["n"]
        and [row["scale"] for row in r["steady_latency_scores"]] == ["measured", "steady"]
        and r["steady_latency_scores"][0]["n"] == r["steady_latency_scores"][1]["n"] >= 1
        and r["steady_latency_mape"] >= 0
        and {(row["scale"], row["group"]) for row in r["held_out_scales"]} >= {("measured", "all"), ("steady", "all"),
                                                                                ("steady", "vit")}
        and r["held_out_steady_throughput_mape"] >= 0 and 0 <= r["held_out_steady_throughput_coverage"] <= 1),
    "05_recommendation": lambda r: (
        r["n_ranked"] >= 1 and r["pick_platform"] in r["candidate_platforms"] and r["pick_within_budget"] is True
        and r["headline"]["pick_memory_high_bytes"] <= r["headline"]["memory_budget_bytes"]
        and (r["top1_hit_rate"] is None or 0 <= r["top1_hit_rate"] <= 1)
        and (r["top1_hit_rate"] is not None or r["evaluation_skipped_reason"] != "")
        and (r["mean_regret"] is None or r["mean_regret"] >= 0) and r["headline"]["rank_by"] == "bound"
        and [(row["scale"], row["rank_by"]) for row in r["ranking_scores"]] == [
            (s, b) for s in ("measured", "steady") for b in ("point", "bound")]
        and len({row["n_variants"] for row in r["ranking_scores"]}) == 1
        and all(row["n_told"] <= row["n_variants"] for row in r["ranking_scores"])
        and all(row["hit_or_tie_rate"] >= row["top1_hit_rate"] for row in r["ranking_scores"] if row["n_variants"])),
    "06_distributed": lambda r: (
        r["n_ok_worlds"] == 2 and r["ok_world_sizes"] == [1, 2] and r["not_ok"] == {}
        and set(r["attempts"]) == {"1", "2"} and all(a in (1, 2) for a in r["attempts"].values())
        and all(v > 0 for v in r["throughput_items_per_s"].values()) and set(r["scaling_efficiency"]) == {"2"}
        and all(0 < e < 2 for e in r["scaling_efficiency"].values()) and r["memory_n_validated"] >= 3
        and all(abs(e) < 50 for e in r["memory_signed_error_pct"]) and r["memory_single_max_abs_error_pct"] is not None
        and r["advisor_fits"] is True and r["advisor_strategy"] in ("ddp", "zero1", "zero2", "fsdp")),
    "07_generation": lambda r: (
        r["n_ok"] == r["n_generation_rows"] == 4 and all(t >= p > 0 for t, p in zip(r["ttft_ms"], r["prefill_ms"],
                                                                                   strict=True))
        and all(t > 0 for t in r["tpot_ms"]) and all(abs(e) <= 10 for e in r["kv_estimate_error_pct"])
        and r["n_speedups"] == 2 * 3 and r["n_best"] == 3),
    "08_coverage": lambda r: (
        r["n_architectures"] == 3 and r["n_rows"] == 6 and sum(r["statuses"].values()) == 6
        and r["statuses"].get("ok", 0) >= 3 and r["ok_share"]["cpu"] == 1.0 and r["failed_have_stage"]
        and all(s > 0 for s in r["speedups"])),
    "explore": lambda r: (
        r["n_rows"] >= 2 and r["metric"] == "throughput_items_per_s" and r["metric_min"] > 0 and r["model"] == "bert"
        and r["platforms"] == ["cpu"] and r["n_results_loaded"] >= r["n_rows"]),
}


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory):
    """One database for the notebooks of this module, seeded with two tiny runs so analysis notebooks have data in any
    order, and 02 a baseline run to compare the latest with."""
    import kit

    path = str(tmp_path_factory.mktemp("nb") / "benchkit.duckdb")
    con = kit.connect(path)
    for run_id in ("nb-seed", "nb-seed-2"):
        spec = kit.SweepSpec(models=["bert"], platforms=["cpu"], precisions=["fp32"], batch_sizes=[1, 2],
                             time_budget_s=0.2, min_samples=5, rounds=4, run_id=run_id)
        kit.run_sweep(spec, con, progress=False)
    con.close()
    return path


REPORT_STEMS = ["01_benchmark", "explore"]  # executed and checked by the report test, from an empty store
FLEET_STEMS = ["02_comparative_analysis", "05_recommendation"]  # executed and checked by the fleet test


@pytest.mark.notebooks
@pytest.mark.parametrize("stem", [s for s in STEMS if s not in REPORT_STEMS + FLEET_STEMS])
def test_notebook_runs_on_tiny_parameters(stem, tmp_path, shared_db):
    extra = {"db_path": shared_db} if "db_path" in _declared(stem) else {}
    out = pipeline.execute(NOTEBOOKS / f"{stem}.ipynb", PARAMS / f"{stem}.tiny.yaml", tmp_path, extra_parameters=extra)
    check_executed(stem, out)


def check_executed(stem: str, out: pipeline.Executed) -> None:
    """An executed notebook's pages, outputs and recorded values are what its tests expect."""
    assert out.html.exists() and out.html_no_input.exists()
    published = out.html_no_input.read_text()
    assert not re.search(r"recorded \w+ = ", published), "the values recorded for tests stay out of the published page"
    if stem != "explore":  # the answer leads the published page: its headline block comes before any table or chart
        body = published.find("<body")
        first = min(i for i in (published.find("<table", body), published.find("data:image/png", body)) if i >= 0)
        assert body < published.find("benchkit-headline") < first
        assert out.recorded["headline_figures"] and all(out.recorded["headline_figures"].values())
    page = out.html.read_text()
    outputs = [o for c in nbformat.read(str(out.ipynb), as_version=4).cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], "no error output in the executed notebook"
    charts = [o for o in outputs if "image/png" in o.get("data", {})]
    assert charts, "the notebook displays its charts as PNG images"
    assert page.count("data:image/png;base64") >= len(charts), "every chart is embedded in the HTML"
    assert EXPECT.get(stem, lambda r: bool(r))(out.recorded), json.dumps(out.recorded, default=str)  # untruncated


def test_failing_notebook_names_the_cell(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("raise ValueError('planted')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, str(path))
    with pytest.raises(pipeline.NotebookFailed, match="bad.ipynb failed in cell 2: ValueError: planted"):
        pipeline.execute(path, None, tmp_path / "out")


def test_index_links_every_notebook_with_its_status(tmp_path):
    entries = []
    for stem in ("a", "b"):
        (tmp_path / stem).mkdir()
        html = tmp_path / stem / "x.html"
        html.write_text("<html></html>")
        executed = pipeline.Executed(stem, html, html, html, {"n_ok": 3, "ratios": [0.197164097, 2.0]})
        entries.append(pipeline.Entry(stem, "done", 75.0, executed))
    entries += [pipeline.Entry("c", "failed", 3.0, error="c.ipynb failed in cell 2: ValueError: <planted>"),
                pipeline.Entry("d", "running"), pipeline.Entry("e")]
    page = pipeline.write_index(entries, tmp_path / "index.html", "quick").read_text()
    assert "a/x.html" in page and "b/x.html" in page and "n_ok" in page and "1 min 15 s" in page
    assert "[0.1972, 2.0]" in page  # floats rounded inside lists
    assert "ValueError: &lt;planted&gt;" in page and ">running<" in page and ">pending<" in page
    assert "http-equiv='refresh'" in page and "profile <b>quick</b>" in page
    finished = pipeline.write_index(entries[:2], tmp_path / "index.html").read_text()
    assert "refresh" not in finished and "finished" in finished


def test_profiles_name_their_files_and_expected_times():
    assert pipeline.parameters_for("01_benchmark", "quick") == PARAMS / "01_benchmark.quick.yaml"
    assert pipeline.parameters_for("01_benchmark", "full") == PARAMS / "01_benchmark.yaml"
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        pipeline.parameters_for("01_benchmark", "huge")
    for profile in ("quick", "full"):
        expected = pipeline.expected_seconds(profile)
        assert set(expected) == set(STEMS) and all(s > 0 for s in expected.values())


@pytest.mark.notebooks
def test_report_runs_from_an_empty_store_and_grows_its_index(tmp_path, capsys):
    """`benchkit report --tiny` end to end in its own folder, on an empty store (no seeded run), as a new user would,
    with the checks of each notebook it runs (REPORT_STEMS); the index exists after the first notebook and keeps the
    others when one notebook runs again."""
    from kit.cli import main

    out = tmp_path / "report"
    assert main(["report", "--tiny", "--out", str(out), "--db", str(out / "benchkit.duckdb"),
                 "--notebooks", *REPORT_STEMS]) == 0
    for entry in pipeline.earlier_entries(out, REPORT_STEMS):  # each notebook's own checks
        check_executed(entry.stem, entry.executed)
    printed = capsys.readouterr().out
    assert "[1/2] 01_benchmark: running" in printed and "[2/2] explore: done in" in printed
    assert "sweep " in printed and "configurations done (stored " in printed  # the sweep's live progress
    page = (out / "index.html").read_text()
    assert page.count(">done<") == 2 and "refresh" not in page
    assert main(["report", "--tiny", "--out", str(out), "--db", str(out / "benchkit.duckdb"), "-q",
                 "--notebooks", "explore"]) == 0  # one notebook again: the others stay on the index
    assert capsys.readouterr().out.startswith("index:")
    page = (out / "index.html").read_text()
    assert page.count(">done<") == 2 and "01_benchmark/" in page and "explore/" in page
    # the report as a reader opens it: the index and every page it links, in headless Chromium
    from kit.browser.chromium import chromium_path

    if not Path(chromium_path()).is_file():
        pytest.skip(f"no Chromium at {chromium_path()} for the browser check (make browser installs it)")
    from kit.browser.report_check import check_pages

    pages = [out / "index.html", *sorted(out.glob("*/*.html"))]
    assert len(pages) >= 5 and check_pages(pages) == []


@pytest.fixture(scope="module")
def fleet_db(shared_db, tmp_path_factory):
    """The shared store merged with a test-fixture machine (hardware id fixture-b) that measured the same run's
    configurations at half the latency: a fleet of two machines."""
    from kit import storage
    from kit.merge import merge_stores
    from kit.records import Record

    folder = tmp_path_factory.mktemp("fleet")
    con = storage.connect(shared_db, read_only=True)
    records = storage.load_records(con, "nb-seed")
    con.close()
    other = storage.connect(folder / "b.duckdb")
    environment = {"env_id": "env-fixture-b", "hardware": {"hardware_id": "fixture-b", "cpu_model": "Fixture CPU b"}}
    storage.start_run(other, "nb-seed-fixture-b", {"models": ["bert"]}, environment)
    for record in records:  # every call twice as fast; the summary statistics computed again from the samples
        identity = {k: getattr(record, k) for k in ("config_key", "model", "family", "size", "mode", "platform",
                                                    "device", "precision", "batch_size", "seq_len", "sample_rounds",
                                                    "peak_memory_bytes", "params_json")}
        storage.insert_record(other, Record.from_samples([s / 2 for s in record.samples_s], run_id="nb-seed-fixture-b",
                                                         **identity))
    storage.finish_run(other, "nb-seed-fixture-b")
    other.close()
    merge_stores([shared_db, folder / "b.duckdb"], folder / "fleet.duckdb")
    return str(folder / "fleet.duckdb")


@pytest.mark.notebooks
def test_notebooks_02_and_05_compare_and_rank_across_machines_from_a_parquet_dataset(fleet_db, tmp_path):
    """The fleet exported to a Parquet dataset (kit.dataset): notebooks 02 and 05 read it as they read a store,
    compare and rank the two machines, and leave the dataset's files as they were; with the checks of each notebook
    (FLEET_STEMS), which run nowhere else."""
    from kit import storage
    from kit.dataset import export_dataset

    con = storage.connect(fleet_db, read_only=True)
    machines = dict(con.execute("SELECT run_id, hardware_id FROM runs").fetchall())
    folder = tmp_path / "fleet"
    assert export_dataset(con, folder)["written"]
    con.close()
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    here = machines["nb-seed"]
    out = pipeline.execute(NOTEBOOKS / "02_comparative_analysis.ipynb", PARAMS / "02_comparative_analysis.tiny.yaml",
                           tmp_path / "02", extra_parameters={"db_path": str(folder), "baseline_machine": here})
    check_executed("02_comparative_analysis", out)
    assert out.recorded["n_machines"] == 2 and out.recorded["n_machine_speedups"] >= 2, out.recorded
    out = pipeline.execute(NOTEBOOKS / "05_recommendation.ipynb", PARAMS / "05_recommendation.tiny.yaml",
                           tmp_path / "05", extra_parameters={"db_path": str(folder), "latency_bound_ms": 1000.0,
                                                              "machine_prices": {here: 1.0, "fixture-b": 1.5},
                                                              "platforms": ["cpu"]})
    check_executed("05_recommendation", out)
    assert out.recorded["n_fleet_ranked"] >= 2 and out.recorded["fleet_machines"] == sorted([here, "fixture-b"])
    assert out.recorded["fleet_p99_within_bound"] is True
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_report_upgrades_each_existing_store_the_notebooks_read_once(tmp_path, monkeypatch):
    from kit import pipeline, storage
    from kit.predict import upgrade

    assert pipeline.stores_read(["04_prediction", "05_recommendation"], "quick") == [Path("outputs/benchkit.duckdb")]
    given = tmp_path / "given.duckdb"
    assert pipeline.stores_read(["04_prediction", "01_benchmark"], "quick", {"db_path": str(given)}) == [given]
    storage.connect(given).close()
    upgraded, lines = [], []
    monkeypatch.setattr(upgrade, "upgrade_store", lambda con: upgraded.append(con) or {
        "forward_profiles": 0, "openvino_kernels": 7, "normalised_latency": 3})
    pipeline.upgrade_stores([given, tmp_path / "absent.duckdb"], lines.append)
    assert len(upgraded) == 1 and lines == [f"{given}: what older results lacked: forward profiles stored for 0 "
                                            "results, OpenVINO kernel facts for 7 results, normalised latency for 3 "
                                            "results"]
