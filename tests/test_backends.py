import pytest
import torch

from kit.backends import available_platforms, get_backend, known_platforms
from kit.errors import ConfigError

HAS_CUDA = torch.cuda.is_available() and not torch.version.hip


def test_registry_knows_torch_platforms():
    assert {"cpu", "cuda", "rocm", "mps"} <= set(known_platforms())


def test_unknown_platform_error_names_value_and_choices():
    with pytest.raises(ConfigError, match=r"unknown platform 'cdua'; known: .*cpu.*cuda"):
        get_backend("cdua")


def test_every_platform_answers_available_with_a_reason():
    for name, (ok, reason) in available_platforms().items():
        assert isinstance(ok, bool) and reason, name
    assert available_platforms()["cpu"][0]


def test_int8_is_cpu_inference_only():
    assert get_backend("cpu").supports("int8", "inference")[0]
    ok, reason = get_backend("cpu").supports("int8", "training")
    assert not ok and "inference-only" in reason
    ok, reason = get_backend("cuda").supports("int8", "inference")
    assert not ok and "CPU only" in reason


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "int8"])
def test_cpu_prepare_runs_a_linear_model(precision):
    class Loaded:
        model = torch.nn.Sequential(torch.nn.Linear(8, 8))

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Loaded.model

        def forward(self, x):
            return self.inner(x)

    Loaded.model = Wrapped()
    call, facts = get_backend("cpu").prepare(Loaded, {"x": torch.randn(2, 8)}, precision, "inference")
    out = call()
    assert out.shape == (2, 8) and facts["precision_ran"] == precision
    if precision in ("bf16", "fp16"):
        assert out.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_cuda_clock_and_tracker_measure_real_work():
    backend = get_backend("cuda")
    assert backend.available()[0]
    x = torch.randn(2048, 2048, device="cuda")
    tracker = backend.memory_tracker()
    tracker.reset()
    elapsed = backend.clock().time_call(lambda: x @ x)
    assert elapsed > 0 and tracker.peak_bytes() >= 2048 * 2048 * 4
