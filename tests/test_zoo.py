"""The model zoo: every family builds tiny and trains a step, names are checked, base configs have the real sizes."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from kit import zoo  # noqa: E402
from kit.errors import ConfigError  # noqa: E402
from kit.zoo.families import REGISTRY  # noqa: E402
from kit.zoo.loading import build_config  # noqa: E402

BASE_PARAMS_M = {"bert": 110, "t5": 60.5, "llama": 1100, "qwen2": 494, "vit": 86.6, "detr": 41.5, "clip": 151.3,
                 "whisper": 37.8, "wav2vec2": 94.4, "clap": 153.5, "llava": 583, "llava-next": 583, "xclip": 196.6}


def _finite(value) -> bool:
    """Whether every tensor inside a model output is finite."""
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all()) if value.is_floating_point() else True
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


@pytest.fixture(scope="module", params=zoo.FAMILIES)
def tiny(request) -> zoo.LoadedModel:
    """Each family at the tiny size, built once."""
    return zoo.load_model(request.param)


def test_tiny_forward_is_finite(tiny: zoo.LoadedModel) -> None:
    assert not tiny.model.training and tiny.size == "tiny" and tiny.family in zoo.FAMILIES
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in tiny.model.parameters())
    with torch.no_grad():
        out = tiny.model(**tiny.make_inputs(2))
    assert _finite(out.to_tuple())


def test_tiny_loss_is_positive_and_backward_works(tiny: zoo.LoadedModel) -> None:
    loss = tiny.loss(tiny.make_inputs(2, with_labels=True))
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = [p.grad for p in tiny.model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    tiny.model.zero_grad(set_to_none=True)


def test_tiny_is_small_and_described(tiny: zoo.LoadedModel) -> None:
    facts = tiny.describe()
    assert 1_000 < facts["n_params"] < 300_000
    assert facts["n_layers"] == 2 and facts["hidden_size"] == 32
    assert facts["family"] == tiny.family and json.loads(facts["config_json"])


def test_inputs_are_deterministic(tiny: zoo.LoadedModel) -> None:
    a, b = tiny.make_inputs(2, seed=3), tiny.make_inputs(2, seed=3)
    for key, value in a.items():
        assert not isinstance(value, torch.Tensor) or torch.equal(value, b[key])


@pytest.mark.parametrize("name", ["BERT", "llava_next", "LLaVA-Next", "x-clip", "XClip"])
def test_resolve_model_accepts_aliases(name: str) -> None:
    assert zoo.resolve_model(name) in zoo.FAMILIES


@pytest.mark.parametrize("name", ["bret", "", "gpt-17"])
def test_resolve_model_names_the_bad_value(name: str) -> None:
    with pytest.raises(ConfigError, match=f"'{name}'.*known: bert, t5"):
        zoo.resolve_model(name)


def test_validate_size_lists_the_sizes() -> None:
    assert zoo.validate_size("base") == "base"
    with pytest.raises(ConfigError, match="'huge'.*tiny, base"):
        zoo.validate_size("huge")


def test_unknown_override_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="num_hiden_layers"):
        zoo.load_model("bert", overrides={"num_hiden_layers": 3})
    with pytest.raises(ConfigError, match="text_config"):
        zoo.load_model("llava", overrides={"text_config.no_such_field": 1})


@pytest.mark.parametrize(("name", "paths"), [
    ("bert", ["num_hidden_layers"]), ("t5", ["num_layers", "num_decoder_layers"]),
    ("whisper", ["encoder_layers", "decoder_layers"]),
    ("llava", ["text_config.num_hidden_layers", "vision_config.num_hidden_layers"]),
    ("clip", ["text_config.num_hidden_layers", "vision_config.num_hidden_layers"])])
def test_overrides_change_the_layer_count(name: str, paths: list[str]) -> None:
    loaded = zoo.load_model(name, overrides={"num_hidden_layers": 3, "hidden_size": 48})
    for path in paths:
        config = loaded.config
        for part in path.split("."):
            config = getattr(config, part)
        assert config == 3
    assert loaded.describe()["n_layers"] == 3 and loaded.describe()["hidden_size"] == 48
    with torch.no_grad():
        loaded.model(**loaded.make_inputs(1))


def test_dotted_override_reaches_a_sub_config() -> None:
    loaded = zoo.load_model("clip", overrides={"vision_config.image_size": 48})
    assert loaded.make_inputs(1)["pixel_values"].shape[-1] == 48


def test_local_folder_loads_with_its_family(tmp_path: Path) -> None:
    zoo.load_model("bert").model.save_pretrained(tmp_path / "ckpt")
    assert zoo.resolve_model(str(tmp_path / "ckpt")) == str((tmp_path / "ckpt").resolve())
    loaded = zoo.load_model(str(tmp_path / "ckpt"))
    assert (loaded.family, loaded.size, loaded.name) == ("bert", "local", str((tmp_path / "ckpt").resolve()))
    assert isinstance(loaded.model, transformers.BertForSequenceClassification) and not loaded.model.training
    assert torch.isfinite(loaded.loss(loaded.make_inputs(2, 8, with_labels=True)))


def test_local_folder_of_an_unknown_family_gets_text_inputs(tmp_path: Path) -> None:
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=500, n_positions=64)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    loaded = zoo.load_model(str(tmp_path / "gpt2"), overrides={"n_layer": 1})
    assert (loaded.family, loaded.size, loaded.modality, loaded.default_seq_len) == ("gpt2", "local", "text", 64)
    assert loaded.config.n_layer == 1 and torch.isfinite(loaded.loss(loaded.make_inputs(2, 8, with_labels=True)))


def test_folder_without_config_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="local HuggingFace folder"):
        zoo.resolve_model(str(tmp_path))


def test_seq_len_sets_tokens_and_is_checked() -> None:
    loaded = zoo.load_model("bert")
    assert loaded.make_inputs(1)["input_ids"].shape == (1, loaded.default_seq_len)
    assert loaded.make_inputs(2, 24)["input_ids"].shape == (2, 24)
    with pytest.raises(ConfigError, match="seq_len"):
        loaded.make_inputs(1, 10_000)
    with pytest.raises(ConfigError, match="batch_size"):
        loaded.make_inputs(0)


def test_flops_grow_with_seq_len() -> None:
    loaded = zoo.load_model("bert")
    short, long = zoo.flops_per_sample(loaded, 16), zoo.flops_per_sample(loaded, 64)
    assert short is not None and long is not None and 0 < short < long
    assert zoo.flops_per_sample(loaded, 10_000) is None


def test_forward_profile_counts_cpu_attention_calls_and_traffic() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    loaded = zoo.load_model("bert")  # uses the fused CPU attention kernel
    config, seq = loaded.config, 16
    stock = FlopCounterMode(display=False)  # torch's counter misses the CPU attention kernel
    with torch.no_grad(), stock:
        loaded.model(**loaded.make_inputs(1, seq))
    profile = zoo.forward_profile(loaded, seq)
    attention = 4 * seq**2 * config.hidden_size * config.num_hidden_layers  # two products per layer
    assert profile["flops_per_sample"] - stock.get_total_flops() == attention
    assert profile["attention_scores_per_sample"] == config.num_attention_heads * seq**2 * config.num_hidden_layers
    longer = zoo.forward_profile(loaded, 4 * seq)
    assert longer["ops_per_forward"] == profile["ops_per_forward"] > 0  # op calls do not depend on the input size
    assert longer["activation_bytes_per_sample"] > 3 * profile["activation_bytes_per_sample"] > 0
    assert set(zoo.forward_profile(loaded, 10_000).values()) == {None}  # too long: logged, not raised


def test_forward_profile_counts_bytes_that_do_not_grow_with_the_batch_and_not_views() -> None:
    bert = zoo.load_model("bert")
    weights = 4 * bert.n_params()
    assert 0 < zoo.forward_profile(bert, 16)["activation_bytes_fixed"] < weights / 10  # transposed weights are views
    t5 = zoo.load_model("t5")  # its relative position bias covers all token pairs, once per forward
    short, long = zoo.forward_profile(t5, 16), zoo.forward_profile(t5, 64)
    assert long["activation_bytes_fixed"] > 8 * short["activation_bytes_fixed"] > 0  # grows with tokens squared


def test_storage_of_views_is_shared_and_a_tensor_without_storage_is_its_own() -> None:
    from kit.zoo.model import _storage

    weight = torch.ones(4, 8)
    assert _storage(weight.t()) == _storage(weight)  # a view is no new bytes
    sparse = torch.eye(3).to_sparse()  # has no storage to share
    assert _storage(sparse) == id(sparse) != _storage(weight)


def test_forward_profile_counts_the_flops_of_convolutions() -> None:
    detr = zoo.forward_profile(zoo.load_model("detr"))  # a ResNet backbone under a transformer
    bert = zoo.forward_profile(zoo.load_model("bert"), 16)
    assert 0 < detr["conv_flops_per_sample"] < detr["flops_per_sample"]
    assert detr["conv_calls_per_forward"] > 10  # a ResNet
    assert bert["conv_flops_per_sample"] == bert["conv_calls_per_forward"] == 0.0
    assert detr["grouped_conv_flops_per_sample"] == bert["grouped_conv_bytes_per_sample"] == 0.0  # ResNet: dense


def test_forward_profile_counts_convolution_calls_and_flops_of_grouped_ones() -> None:
    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.depthwise = torch.nn.Conv2d(8, 8, 3, groups=8)  # 8 x 1 x 3 x 3 weights
            self.pointwise = torch.nn.Conv2d(8, 16, 1)

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.pointwise(self.depthwise(pixel_values))

    def images(config, batch, seq, labels, gen):  # noqa: ANN001, ANN202 (kit's Maker signature)
        return {"pixel_values": torch.ones(batch, 8, 10, 10)}

    loaded = zoo.LoadedModel("block", "block", "local", "vision", Block(), None, None, images)
    profile = zoo.forward_profile(loaded)
    depthwise, pointwise = 2 * 8 * 9 * 8 * 8, 2 * 8 * 16 * 8 * 8  # 2 x in-per-group x k^2 x out x positions
    assert profile["conv_calls_per_forward"] == 2
    assert profile["conv_flops_per_sample"] == depthwise + pointwise  # the grouped one counted by its weights
    assert profile["grouped_conv_flops_per_sample"] == depthwise
    assert profile["grouped_conv_bytes_per_sample"] == 4 * (8 * 10 * 10 + 8 * 8 * 8)  # its fp32 input and output


def test_forward_profile_counts_python_calls_of_the_model_code() -> None:
    one = zoo.forward_profile(zoo.load_model("bert", overrides={"num_hidden_layers": 1}), 16)
    three = zoo.forward_profile(zoo.load_model("bert", overrides={"num_hidden_layers": 3}), 16)
    longer = zoo.forward_profile(zoo.load_model("bert", overrides={"num_hidden_layers": 1}), 64)
    per_layer = (three["python_calls_per_forward"] - one["python_calls_per_forward"]) / 2
    assert per_layer > 10  # each encoder layer runs Python: attention, output and intermediate modules
    assert longer["python_calls_per_forward"] == one["python_calls_per_forward"]  # the input size adds no code
    assert sys.getprofile() is None  # the counting hook is removed


@pytest.mark.parametrize("name", list(BASE_PARAMS_M))
def test_base_configs_have_the_real_parameter_counts(name: str) -> None:
    family = REGISTRY[name]
    with torch.device("meta"):
        model = getattr(transformers, family.head_class)(build_config(family, "base"))
    n_params_m = sum(p.numel() for p in model.parameters()) / 1e6
    assert n_params_m == pytest.approx(BASE_PARAMS_M[name], rel=0.05)


def test_forward_profile_records_matrix_product_shapes_at_two_batch_sizes() -> None:
    class Dense(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(64, 32)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            hidden = self.proj(input_ids)  # (batch x 16) x 64 times 64 x 32
            return hidden @ hidden.transpose(1, 2)  # per sample: 16 x 32 times 32 x 16

    def tokens(config, batch, seq, labels, gen):  # noqa: ANN001, ANN202 (kit's Maker signature)
        return {"input_ids": torch.ones(batch, 16, 64)}

    loaded = zoo.LoadedModel("dense", "dense", "local", "text", Dense(), None, None, tokens)
    shapes = json.loads(zoo.forward_profile(loaded)["matmul_shapes"])
    # [M, N, K, G] at batch 1, then at batch 2, and calls: the projection grows M, the batched product G
    assert sorted(shapes) == [[16, 16, 32, 1, 16, 16, 32, 2, 1], [16, 32, 64, 1, 32, 32, 64, 1, 1]]


def test_forward_profile_records_the_products_convolutions_compute() -> None:
    class Convs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)  # 8 x 8 -> 4 x 4
            self.depthwise = torch.nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=8)
            self.up = torch.nn.ConvTranspose2d(8, 4, kernel_size=2, stride=2)  # 4 x 4 -> 8 x 8

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.up(self.depthwise(self.stem(pixel_values)))

    def images(config, batch, seq, labels, gen):  # noqa: ANN001, ANN202 (kit's Maker signature)
        return {"pixel_values": torch.ones(batch, 3, 8, 8)}

    loaded = zoo.LoadedModel("convs", "convs", "local", "vision", Convs(), None, None, images)
    profile = zoo.forward_profile(loaded)
    shapes = json.loads(profile["conv_shapes"])
    # [M, N, K, G] at batch 1, then at batch 2, and calls: output positions x batch, channels out, channels in x kernel
    assert sorted(shapes) == [[16, 1, 9, 8, 32, 1, 9, 8, 1],  # depthwise: one channel per group, 8 groups
                              [16, 8, 27, 1, 32, 8, 27, 1, 1],  # stem: 3 channels x 3 x 3 in, 8 out
                              [16, 16, 8, 1, 32, 16, 8, 1, 1]]  # transposed: input positions, 4 out x 2 x 2, 8 in
    products = sum(2 * m * n * k * g * calls for m, n, k, g, *_, calls in shapes)
    assert products == profile["conv_flops_per_sample"]  # the products hold the convolutions' FLOPs
