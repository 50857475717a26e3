import numpy as np
import pytest
import torch
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

from kit.config import SweepSpec
from kit.deviation import deviation_metrics, flatten_outputs, main_output, main_output_name, output_deviation
from kit.errors import MeasurementError
from kit.runners.inference import measure_inference


def test_metrics_on_hand_made_tensors():
    reference = torch.tensor([3.0, 4.0])  # norm 5
    metrics = deviation_metrics(reference, torch.tensor([3.0, 4.5]))
    assert metrics["rel_l2"] == pytest.approx(0.1) and metrics["max_abs"] == pytest.approx(0.5)
    assert deviation_metrics(reference, reference.clone()) == {"rel_l2": 0.0, "max_abs": 0.0}


def test_metrics_take_numpy_and_low_precision_and_compute_in_fp32():
    reference = torch.tensor([[1.0, -2.0], [2.0, 4.0]])  # norm 5
    from_numpy = deviation_metrics(reference, np.array([[1.0, -2.0], [2.0, 1.0]], dtype=np.float64))
    assert from_numpy["rel_l2"] == pytest.approx(0.6) and from_numpy["max_abs"] == pytest.approx(3.0)
    bf16 = torch.tensor([1.0, 1.0078125], dtype=torch.bfloat16)  # both exact in bf16 (7 mantissa bits)
    assert deviation_metrics(torch.tensor([1.0, 1.0]), bf16)["max_abs"] == pytest.approx(0.0078125)


def test_zero_reference_and_shape_mismatch():
    assert deviation_metrics(torch.zeros(3), torch.zeros(3))["rel_l2"] == 0.0
    assert deviation_metrics(torch.zeros(3), torch.ones(3))["rel_l2"] == float("inf")
    with pytest.raises(MeasurementError, match=r"shape \(2,\) differs from the reference's \(3,\)"):
        deviation_metrics(torch.zeros(3), torch.zeros(2))


def test_main_output_follows_the_documented_order():
    detr = {"loss": torch.tensor(1.0), "pred_boxes": torch.ones(1), "logits": torch.ones(1)}
    assert main_output_name(detr) == "logits"
    clip = {"logits_per_image": torch.ones(1), "logits_per_text": torch.ones(1), "text_embeds": torch.ones(1)}
    assert main_output_name(clip) == "logits_per_image"
    assert main_output_name({"pooler_output": torch.ones(1), "last_hidden_state": torch.ones(1)}) == "last_hidden_state"
    assert main_output_name({"loss": torch.tensor(1.0), "ids": torch.ones(2, dtype=torch.long),
                             "scores": torch.ones(2)}) == "scores"
    with pytest.raises(MeasurementError, match="no floating-point output"):
        main_output_name({"ids": torch.ones(2, dtype=torch.long)})


def test_flatten_names_nested_outputs_and_skips_objects():
    output = {"logits": torch.ones(2), "text_model_output": BaseModelOutput(last_hidden_state=torch.ones(3)),
              "hidden_states": (torch.ones(1), torch.ones(1)), "past_key_values": object()}
    assert sorted(flatten_outputs(output)) == ["hidden_states.0", "hidden_states.1", "logits",
                                               "text_model_output.last_hidden_state"]


def test_output_deviation_matches_by_name_and_flags_non_finite():
    reference = main_output(SequenceClassifierOutput(logits=torch.tensor([[3.0, 4.0]])))
    assert reference[0] == "logits"
    stored = output_deviation(reference, {"logits": np.array([[3.0, 4.5]], dtype=np.float32)})
    assert stored["rel_l2"] == pytest.approx(0.1) and stored["output"] == "logits" and stored["finite"]
    overflowed = output_deviation(reference, {"logits": torch.tensor([[float("inf"), 4.0]])})
    assert overflowed["rel_l2"] is None and overflowed["finite"] is False
    with pytest.raises(MeasurementError, match="'logits' of the reference is missing"):
        output_deviation(reference, {"last_hidden_state": torch.ones(1, 2)})


def _job(precision: str):
    spec = SweepSpec(models=["bert"], precisions=[precision], batch_sizes=[2], time_budget_s=0.05, min_samples=3,
                     warmup_iters=1, run_id="dev")
    return spec.jobs()[0]


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_torch_cpu_non_fp32_runs_store_their_deviation(precision):
    record = measure_inference(_job(precision))
    deviation = record.extra["deviation"]
    assert deviation["output"] == "logits" and deviation["shape"] == [2, 2] and deviation["finite"]
    assert 0 < deviation["rel_l2"] < 0.2 and deviation["max_abs"] > 0


def test_torch_cpu_fp32_is_the_reference_and_stores_none():
    assert "deviation" not in measure_inference(_job("fp32")).extra
