"""The training runner: every family trains, phases add up to the step, the loss falls, throughput is batch / step."""

from dataclasses import replace

import pytest
import torch

from kit import zoo
from kit.backends import get_backend
from kit.config import SweepSpec
from kit.errors import ConfigError, UnsupportedConfiguration
from kit.runners import training


def _job(model="bert", batch_size=2, precision="fp32", **training_options):
    spec = SweepSpec(models=[model], modes=["training"], precisions=[precision], batch_sizes=[batch_size],
                     time_budget_s=0.05, min_samples=3, warmup_iters=1, threads=1, training=training_options,
                     run_id="train-test")
    return spec.jobs()[0]


class TickClock:
    """A virtual clock: each innermost timed call takes `tick_s`; an outer call lasts as long as the calls inside."""

    def __init__(self, tick_s: float = 0.01) -> None:
        self.tick_s, self.now, self.calls = tick_s, 0.0, 0

    def time_call(self, fn) -> float:
        start, calls = self.now, self.calls
        fn()
        if self.calls == calls:
            self.now += self.tick_s
        self.calls += 1
        return self.now - start


@pytest.mark.parametrize("family", zoo.FAMILIES)
def test_every_family_completes_training_steps(family):
    # min_samples only gates convergence; a budget of several steps keeps the sample count off the machine's load
    record = training.measure_training(replace(_job(family), time_budget_s=0.2))
    assert record.status == "ok" and record.mode == "training" and record.n_samples >= 3
    assert record.extra["n_steps"] >= record.n_samples and record.throughput_items_per_s > 0
    split = record.extra["memory_split_bytes"]
    n_tensors = len(list(zoo.load_model(family, "tiny").model.parameters()))
    # AdamW keeps m and v (plus a step scalar) for each parameter that got a gradient; grads are fp32 like the weights
    extra_state = split["optimizer_state_bytes"] - 2 * split["gradients_bytes"]
    assert 0 < split["gradients_bytes"] <= split["weights_bytes"] and 0 <= extra_state <= 8 * n_tensors
    assert split["activations_bytes"] >= 0
    assert set(record.extra["forward_profile"]) == set(zoo.PROFILE_KEYS) - {"flops_per_sample"}
    steal = record.extra["host_steal_share"]  # recorded with every measurement (None where not counted)
    assert steal is None or 0 <= steal <= 1


def test_loss_decreases_on_the_fixed_synthetic_batch():
    record = training.measure_training(_job("bert", lr=1e-3))
    assert record.extra["last_loss"] < record.extra["first_loss"] and record.extra["loss_decreased"] is True


def test_phase_means_add_up_to_about_the_step_time():
    record = training.measure_training(replace(_job("bert"), time_budget_s=0.3, min_samples=10))
    phases = record.extra["phases_mean_s"]
    assert set(phases) == set(training.PHASES) and all(v > 0 for v in phases.values())
    assert sum(phases.values()) == pytest.approx(record.latency_mean_s, rel=0.15)


def test_throughput_is_batch_over_step_time_on_a_known_clock(monkeypatch):
    clock = TickClock(0.01)
    backend = get_backend("cpu")
    monkeypatch.setattr(backend, "clock", lambda: clock)
    monkeypatch.setattr(training, "check_supported", lambda job: (backend, "ok"))
    record = training.measure_training(_job("bert", batch_size=4, accumulation_steps=2))
    # one optimizer step = 2 x (forward + backward) + step + zero_grad = 6 ticks = 0.06 s for 2 x 4 items
    assert record.latency_p50_s == pytest.approx(0.03)
    assert record.throughput_items_per_s == pytest.approx(4 / 0.03)  # not multiplied by the number of steps
    assert record.extra["phases_mean_s"]["forward_s"] == pytest.approx(0.01)
    assert record.extra["phases_mean_s"]["optimizer_s"] == pytest.approx(0.005)


def test_options_are_applied_and_recorded():
    record = training.measure_training(_job("bert", precision="bf16", accumulation_steps=2,
                                            gradient_checkpointing=True))
    extra = record.extra
    assert extra["amp"] and extra["precision_ran"] == "autocast-bf16" and extra["accumulation_steps"] == 2
    assert extra["gradient_checkpointing"] is True and extra["optimizer"].startswith("AdamW (")
    assert extra["grad_scaler"] is False


def test_fp16_uses_a_grad_scaler():
    if not get_backend("cpu").supports("fp16", "training")[0]:
        pytest.skip("fp16 training unsupported on this CPU")
    assert training.measure_training(_job("bert", precision="fp16")).extra["grad_scaler"] is True


def test_fused_adamw_is_used_where_available_else_foreach():
    params = [torch.nn.Parameter(torch.ones(3))]
    _, kind = training.make_optimizer(params, 1e-3, fused=True)
    assert kind in ("fused", "foreach")
    assert training.make_optimizer(params, 1e-3, fused=False)[1] == "foreach"


def test_contrastive_training_needs_a_pair():
    with pytest.raises(UnsupportedConfiguration, match="batch_size >= 2"):
        training.measure_training(_job("clip", batch_size=1))


def test_unknown_training_option_is_named():
    with pytest.raises(ConfigError, match="momentum"):
        training.training_options(_job("bert", momentum=0.9))
