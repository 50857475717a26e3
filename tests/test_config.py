import pytest

from kit.config import SweepSpec, load_parameters, spec_from_parameters
from kit.errors import ConfigError


def test_spec_expands_matrix_in_stable_order():
    spec = SweepSpec(models=["bert", "vit"], precisions=["fp32", "bf16"], batch_sizes=[1, 2], run_id="r")
    jobs = spec.jobs()
    assert len(jobs) == 8 and jobs[0].config_key == "bert|tiny|inference|cpu|fp32|bs1|seqdefault"
    assert len({j.config_key for j in jobs}) == 8


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"models": ["bret"]}, "bret"),
        ({"platforms": ["cdua"]}, "cdua"),
        ({"precisions": ["fp8"]}, "fp8"),
        ({"batch_sizes": [0]}, "batch_sizes must be positive integers, got 0"),
        ({"batch_sizes": [-2]}, "-2"),
        ({"modes": ["serve"]}, "serve"),
        ({"size": "huge"}, "huge"),
        ({"time_budget_s": 0}, "time_budget_s"),
        ({"min_samples": 50, "max_samples": 10}, "min_samples"),
        ({"training": {"momentum": 0.9}}, "momentum"),
        ({"training": {"accumulation_steps": 0}}, "accumulation_steps must be an integer >= 1, got 0"),
    ],
)
def test_bad_parameters_are_rejected_by_name(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SweepSpec(**{"models": ["bert"], **kwargs})


def test_unknown_yaml_key_is_rejected(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("models: [bert]\nbatch_size: [1]\n")
    with pytest.raises(ConfigError, match="batch_size"):
        spec_from_parameters(load_parameters(path))


def test_missing_parameter_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_parameters(tmp_path / "nope.yaml")


def test_run_id_is_generated_when_absent():
    assert SweepSpec(models=["bert"]).run_id.startswith("run-")
