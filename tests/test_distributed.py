"""Distributed benchmarks under torchrun on gloo/CPU: DDP with 2 processes follows the 1-process loss trajectory at
the same global batch, FSDP2 runs (or is skipped with its exact error), failures become records, CUDA skips cleanly."""

from __future__ import annotations

import pytest
import torch

from kit import storage
from kit.distributed import DistributedSpec, launch_command, ok_record, run_distributed_benchmark
from kit.distributed.worker import local_slice, union_length_us
from kit.errors import ConfigError

TINY = {"seq_len": 16, "warmup_steps": 1, "optimizer": "sgd", "lr": 0.1, "profile_steps": 1, "timeout_s": 180}
STEPS = 4


@pytest.fixture(scope="module")
def one_process():
    """World size 1 with the whole global batch of 4."""
    return run_distributed_benchmark("bert", "tiny", "ddp", (1,), 4, STEPS, **TINY)[0]


def test_two_process_ddp_matches_one_process_loss_trajectory(one_process, tmp_path):
    con = storage.connect(tmp_path / "ddp.duckdb")
    [two] = run_distributed_benchmark("bert", "tiny", "ddp", (2,), 2, STEPS, db=con, run_id="ddp-test", **TINY)
    assert one_process.status == "ok", one_process.reason
    assert two.status == "ok", two.reason
    assert two.extra["losses"] == pytest.approx(one_process.extra["losses"], rel=1e-4, abs=1e-5)
    assert len(two.extra["losses"]) == 1 + TINY["warmup_steps"] + STEPS  # first step, warm-up, timed steps
    assert two.extra["losses"][-1] < two.extra["losses"][0]
    e = two.extra
    assert (two.world_size, e["threads_per_rank"], e["backend"], two.batch_size) == (2, 1, "gloo", 4)
    assert "world_size" not in e and storage.load_records(con, "ddp-test")[0].world_size == 2
    assert [len(t) for t in e["per_rank_step_times_s"]] == [STEPS, STEPS] and two.n_samples == STEPS
    assert 0 <= e["comm_share"] <= 1 and e["comm_method"]
    assert len(e["per_rank_peak_memory_bytes"]) == 2 and all(p > 0 for p in e["per_rank_peak_above_baseline_bytes"])
    assert e["scaling_efficiency"] is None  # no world size 1 in this call
    assert [r.config_key for r in storage.load_records(con, "ddp-test")] == [two.config_key]


def test_fsdp2_on_gloo_runs_or_is_skipped_with_its_error(one_process):
    [record] = run_distributed_benchmark("bert", "tiny", "fsdp", (2,), 2, STEPS, **TINY)
    if record.status == "skipped":
        assert "fully_shard" in record.reason and torch.__version__ in record.reason
        return
    assert record.status == "ok", record.reason
    assert record.extra["losses"] == pytest.approx(one_process.extra["losses"], rel=1e-4, abs=1e-5)
    sharded, whole = (r.extra["memory_split_bytes"]["weights_bytes"] for r in (record, one_process))
    assert sharded < whole


def test_a_failing_rank_becomes_a_failed_record_with_its_error():
    [record] = run_distributed_benchmark("bert", "tiny", "ddp", (1,), 2, 2, **{**TINY, "seq_len": 4096})
    assert record.status == "failed"
    assert "rank 0 failed in phase setup" in record.reason and "seq_len 4096" in record.reason
    assert record.extra["attempts"] == 1 and record.extra["earlier_attempts"] == []  # its own error: not launched again


def test_timeout_kills_torchrun_and_fails_the_record():
    [record] = run_distributed_benchmark("bert", "tiny", "ddp", (1,), 2, 2, **{**TINY, "timeout_s": 0.5})
    assert record.status == "failed" and "timed out" in record.reason
    assert record.extra["attempts"] == 2 and "timed out" in record.extra["earlier_attempts"][0]
    [once] = run_distributed_benchmark("bert", "tiny", "ddp", (1,), 2, 2, **{**TINY, "timeout_s": 0.5, "retries": 0})
    assert once.status == "failed" and once.extra["attempts"] == 1


def test_a_failed_launch_is_launched_again_and_says_so(monkeypatch, tmp_path):
    """A launch that fails before any rank reports an error of its own (here torchrun's rendezvous, planted) is run
    again; the record is the second attempt's, with the first one's reason kept."""
    import kit.distributed.bench as distributed

    real, calls = distributed.run_world, []

    def rendezvous_fails_once(spec, world_size, workdir, attempt=1):
        calls.append(attempt)
        if attempt == 1:
            return [], "torchrun exited with code 1: planted rendezvous failure"
        return real(spec, world_size, workdir, attempt)

    monkeypatch.setattr(distributed, "run_world", rendezvous_fails_once)
    spec = DistributedSpec(model="bert", size="tiny", world_sizes=(2,), batch_per_rank=2, steps=2, **TINY)
    record = distributed.measure_world(spec, 2, tmp_path, "retry", "env", None)
    assert calls == [1, 2] and record.status == "ok", record.reason
    assert record.extra["attempts"] == 2 and "planted rendezvous failure" in record.extra["earlier_attempts"][0]
    assert (tmp_path / "ws2-attempt2" / "rank1.json").exists()


def test_which_failures_are_failed_launches():
    from kit.distributed.launch import launch_failed

    ok = {"rank": 0, "ok": True}
    assert not launch_failed([ok, {**ok, "rank": 1}], 2)
    assert launch_failed([], 2)  # nothing reported: rendezvous, crash or hang
    assert launch_failed([ok], 2)  # one rank died without a word
    assert launch_failed([ok, {"rank": 1, "ok": False, "phase": "init"}], 2)  # the process group did not start
    assert not launch_failed([ok, {"rank": 1, "ok": False, "phase": "setup"}], 2)  # the model's own error
    assert DistributedSpec(model="bert").retries_allowed() == 1
    spec = DistributedSpec(model="bert", world_sizes=(2,), nnodes=2, rdzv_endpoint="node0:29400", retries=3)
    assert spec.retries_allowed() == 0  # each node's launcher would decide alone


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip without CUDA")
def test_cuda_path_is_skipped_without_a_gpu():
    [record] = run_distributed_benchmark("bert", "tiny", "ddp", (1,), 2, 2, platform="cuda", **TINY)
    assert record.status == "skipped" and "no CUDA device" in record.reason


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_nccl_ddp_on_one_gpu():
    [record] = run_distributed_benchmark("bert", "tiny", "ddp", (1,), 4, STEPS, platform="cuda", **TINY)
    assert record.status == "ok", record.reason
    assert record.extra["backend"] == "nccl" and record.memory_method == "torch.cuda.max_memory_allocated"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"strategy": "zero9"}, "strategy"), ({"world_sizes": (0, 2)}, "world_sizes"), ({"platform": "tpu"}, "platform"),
    ({"batch_per_rank": 0}, "batch_per_rank"), ({"model": "no-such-model"}, "unknown model"),
    ({"precision": "int8"}, "precision"), ({"timeout_s": 0}, "timeout_s"), ({"retries": -1}, "retries"),
    ({"retries": True}, "retries"),
])
def test_spec_rejects_bad_values_before_work(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DistributedSpec(**{"model": "bert", **kwargs})


def test_parameters_file_is_a_valid_spec():
    from pathlib import Path

    from kit.config import load_parameters
    from kit.distributed import spec_from_parameters

    params = load_parameters(Path(__file__).parent.parent / "parameters" / "06_distributed.yaml")
    assert spec_from_parameters(params).world_sizes == (1, 2)
    with pytest.raises(ConfigError, match="unknown distributed parameter"):
        spec_from_parameters({**params, "wrold_sizes": [2]})


def test_notebook_parameters_make_one_checked_study():
    from pathlib import Path

    from kit.config import load_parameters
    from kit.distributed import study_from_parameters
    from kit.memory import GIB

    params = load_parameters(Path(__file__).parent.parent / "parameters" / "06_distributed.tiny.yaml")
    study = study_from_parameters({**params, "unrelated_name": object()})  # a notebook's namespace holds more
    assert study.run.model == params["model"] and study.memory.modes == ["training"]
    assert study.memory.batch_sizes == params["memory_batch_sizes"] and study.memory.platforms == [study.run.platform]
    assert study.advice["gpu_memory_bytes"] == int(params["gpu_memory_gib"] * GIB)
    assert study.db_path == params["db_path"]
    for bad, match in (({"gpu_memory_gib": 0}, "gpu_memory_gib"), ({"global_batch": 7, "gpus": 2}, "multiple"),
                       ({"strategy": "zero"}, "unknown strategy"), ({"memory_batch_sizes": [0]}, "batch")):
        with pytest.raises(ConfigError, match=match):
            study_from_parameters({**params, **bad})
    with pytest.raises(ConfigError, match=r"missing distributed study parameter\(s\) \['gpus'\]"):
        study_from_parameters({k: v for k, v in params.items() if k != "gpus"})


def test_launch_command_single_node_and_multi_node(tmp_path):
    single = launch_command(tmp_path / "c.json", tmp_path, 2)
    assert single[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    multi = launch_command(tmp_path / "c.json", tmp_path, 8, nnodes=2, rdzv_endpoint="node0:29400")
    assert "--standalone" not in multi and multi[multi.index("--rdzv-endpoint") + 1] == "node0:29400"
    with pytest.raises(ConfigError, match="rdzv_endpoint"):
        launch_command(tmp_path / "c.json", tmp_path, 8, nnodes=2)


def _rank(rank: int, step_s: float) -> dict:
    split = {"weights_bytes": 1, "gradients_bytes": 1, "optimizer_state_bytes": 0}
    return {"rank": rank, "ok": True, "device": "cpu", "backend": "gloo", "step_times_s": [step_s, step_s],
            "first_step_s": step_s, "peak_memory_bytes": 300, "baseline_rss_bytes": 100, "memory_method": "vmhwm",
            "memory_split_bytes": split, "losses": [1.0, 0.9], "local_losses": [1.0, 0.9], "n_params": 10,
            "profiled_comm": {"comm_share": 0.25}, "exposed_comm": {"exposed_comm_s": 0.5}}


def test_scaling_efficiency_and_global_throughput_arithmetic():
    spec = DistributedSpec(model="bert", batch_per_rank=4)
    record = ok_record(spec, 2, [_rank(0, 1.0), _rank(1, 2.0)], "r", "", base_throughput=4.0)
    assert record.samples_s == (2.0, 2.0)  # a global step lasts as long as the slowest rank's
    assert record.throughput_items_per_s == pytest.approx(8 / 2.0)
    assert record.extra["scaling_efficiency"] == pytest.approx(4.0 / (2 * 4.0))
    assert record.extra["per_rank_peak_above_baseline_bytes"] == [200, 200]
    assert record.extra["exposed_comm_share"] == pytest.approx(0.25)


def test_local_slice_and_interval_union():
    batch = {"input_ids": torch.arange(8).reshape(4, 2), "labels": torch.arange(4), "scalar": 3}
    part = local_slice(batch, 1, 2, 4)
    assert part["labels"].tolist() == [2, 3] and part["input_ids"].shape == (2, 2) and part["scalar"] == 3
    assert union_length_us([(0, 10), (5, 15), (20, 25), (21, 22)]) == 20


def test_scaling_summary_and_chart_from_records():
    from kit import plots
    from kit.distributed import failure_record, scaling_summary, scaling_table

    spec = DistributedSpec(model="bert", batch_per_rank=4, world_sizes=(1, 2, 4))
    one = ok_record(spec, 1, [_rank(0, 1.0)], "r", "", base_throughput=None)
    two = ok_record(spec, 2, [_rank(0, 1.0), _rank(1, 1.25)], "r", "", base_throughput=one.throughput_items_per_s)
    four = failure_record(spec, 4, [], "timed out after 1 s", "r", "")
    summary = scaling_summary([one, two, four])
    assert summary["n_ok_worlds"] == 2 and summary["ok_world_sizes"] == [1, 2]
    assert summary["throughput_items_per_s"] == {"1": 4.0, "2": 8 / 1.25}
    assert summary["scaling_efficiency"] == {"2": pytest.approx(0.8)} and "timed out" in summary["not_ok"]["4"]
    fig = plots.scaling_chart(scaling_table([one, two, four]))
    left, middle, right = fig.axes
    assert "samples/s" in left.get_ylabel() and "T(N) / (N x T(1))" in middle.get_ylabel()
    assert list(middle.lines[0].get_ydata()) == [1.0, pytest.approx(0.8)]  # efficiency at N = 1 is 1 by definition
    assert list(left.lines[1].get_ydata()) == [4.0, 8.0] and "ideal" in left.lines[1].get_label()  # N x T(1)
    assert all(ax.get_legend() for ax in fig.axes) and right.get_xlabel() == "world size (processes)"
    assert plots.scaling_chart(scaling_table([four])).axes[0].texts[0].get_text() == "no data"


def test_worker_peak_is_measured_above_the_built_model_baseline(one_process):
    """The worker reads its baseline once the model is built (minus the weights), as the training runner does, so the
    estimate with the worker's calibration is close (read before the imports, the peak above it was ~10x larger)."""
    from kit import memory

    assert one_process.status == "ok", one_process.reason
    baseline = one_process.extra["per_rank_baseline_bytes"][0]
    assert 0 < one_process.extra["per_rank_peak_above_baseline_bytes"][0] < baseline
    [row] = memory.validate_estimates([one_process], memory.record_calibration).to_dict("records")
    assert row["calibration"] == memory.CPU_DISTRIBUTED_CALIBRATION.source
    assert row["estimated_weights_bytes"] == row["measured_weights_bytes"]
    assert abs(row["signed_error_pct"]) < 50  # ~0-5% on the machine it was fitted on; other machines differ


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_loopback_follow_the_one_process_trajectory(one_process, tmp_path):
    """Two launchers with --nnodes 2 and one c10d rendezvous (as on two machines), one process each: every node gets
    every rank's result and builds the same global record."""
    from concurrent.futures import ThreadPoolExecutor

    from kit.distributed import measure_world

    spec = DistributedSpec(model="bert", size="tiny", world_sizes=(2,), batch_per_rank=2, steps=STEPS, nnodes=2,
                           rdzv_endpoint=f"127.0.0.1:{_free_port()}", **TINY)
    with ThreadPoolExecutor(2) as pool:
        nodes = list(pool.map(lambda d: measure_world(spec, 2, tmp_path / d, "nodes", "env", None), ["a", "b"]))
    for record in nodes:
        assert record.status == "ok", record.reason
        assert (record.extra["nnodes"], record.extra["nproc_per_node"], record.world_size) == (2, 1, 2)
        assert record.extra["losses"] == pytest.approx(one_process.extra["losses"], rel=1e-4, abs=1e-5)
        assert record.config_key.endswith("nodes2") and "c10d at 127.0.0.1" in record.extra["launcher"]
    assert nodes[0].samples_s == nodes[1].samples_s  # the same global steps, seen from both nodes


def test_several_nodes_need_a_rendezvous_and_an_even_split():
    with pytest.raises(ConfigError, match="needs rdzv_endpoint HOST:PORT"):
        DistributedSpec(model="bert", world_sizes=(2,), nnodes=2)
    with pytest.raises(ConfigError, match=r"world_sizes \[3\] do not split evenly over nnodes=2"):
        DistributedSpec(model="bert", world_sizes=(2, 3), nnodes=2, rdzv_endpoint="node0:29400")
