"""Random-weight local folders for architectures outside the zoo, and how kit loads them (vision or text)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import yaml  # noqa: E402

from kit import cli, zoo  # noqa: E402
from kit.errors import ConfigError  # noqa: E402
from kit.zoo.checkpoints import make_checkpoints, save_random_checkpoint  # noqa: E402

RESNET = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 2], "num_labels": 3}


def test_a_local_image_classifier_gets_vision_inputs_and_staged_facts(tmp_path: Path) -> None:
    folder = save_random_checkpoint("resnet", tmp_path / "resnet", {**RESNET, "image_size": 40})
    loaded = zoo.load_model(str(folder))
    assert isinstance(loaded.model, transformers.ResNetForImageClassification)
    assert (loaded.family, loaded.modality, loaded.default_seq_len) == ("resnet", "vision", None)
    inputs = loaded.make_inputs(2, with_labels=True)
    assert inputs["pixel_values"].shape == (2, 3, 40, 40) and inputs["labels"].max() < 3
    assert torch.isfinite(loaded.loss(inputs))
    facts = loaded.describe()
    assert (facts["n_layers"], facts["hidden_size"]) == (3, 16)  # blocks over all stages, last stage's width


def test_a_vision_config_without_image_size_gets_224(tmp_path: Path) -> None:
    loaded = zoo.load_model(str(save_random_checkpoint("resnet", tmp_path / "r", RESNET)))
    assert loaded.make_inputs(1)["pixel_values"].shape[-2:] == (224, 224)


def test_random_checkpoints_are_seeded(tmp_path: Path) -> None:
    a = zoo.load_model(str(save_random_checkpoint("resnet", tmp_path / "a", RESNET))).model
    b = zoo.load_model(str(save_random_checkpoint("resnet", tmp_path / "b", RESNET))).model
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_a_text_architecture_gets_a_causal_lm_head(tmp_path: Path) -> None:
    config = {"n_layer": 1, "n_embd": 16, "n_head": 2, "vocab_size": 100, "n_positions": 32, "bos_token_id": 0,
              "eos_token_id": 0}
    loaded = zoo.load_model(str(save_random_checkpoint("gpt2", tmp_path / "g", config)))
    assert isinstance(loaded.model, transformers.GPT2LMHeadModel) and loaded.modality == "text"
    assert loaded.default_seq_len == 32  # the local default (128), capped by the positions


def test_bad_checkpoint_specs_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown model_type 'resnett'"):
        save_random_checkpoint("resnett", tmp_path / "x")
    with pytest.raises(ConfigError, match="must be a mapping"):
        save_random_checkpoint("resnet", tmp_path / "x", [1])
    spec = {"checkpoints": {"ok": {"model_type": "resnet", "config": RESNET}, "bad": {"type": "resnet"}}}
    with pytest.raises(ConfigError, match="checkpoint 'bad' must have model_type"):
        make_checkpoints(spec, tmp_path)
    with pytest.raises(ConfigError, match="non-empty 'checkpoints'"):
        make_checkpoints({}, tmp_path)
    spec = {"checkpoints": {"ok": {"model_type": "resnet", "config": RESNET}, "typo": {"model_type": "resnett"}}}
    with pytest.raises(ConfigError, match="unknown model_type 'resnett'"):
        make_checkpoints(spec, tmp_path)  # checked before the first folder is written
    assert not any(tmp_path.iterdir())


def test_make_checkpoints_command_writes_the_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"checkpoints": {"r1": {"model_type": "resnet", "config": RESNET}}}))
    assert cli.main(["make-checkpoints", str(spec), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "r1" / "config.json").is_file() and "r1" in capsys.readouterr().out


def test_the_checkpoint_specs_are_outside_the_zoo_and_apart() -> None:
    types = {}
    for name, n_types in (("local", 6), ("unseen", 6), ("unseen_2", 5)):
        path = Path("parameters") / (f"{name}_checkpoints.yaml" if name != "unseen_2" else "unseen_checkpoints_2.yaml")
        spec = yaml.safe_load(path.read_text())["checkpoints"]
        types[name] = {e["model_type"] for e in spec.values()}
        assert len(types[name]) == n_types and len(spec) == 3 * n_types  # three sizes each
    known = set(zoo.FAMILIES) | {"llava_next", "x_clip"}
    assert not set().union(*types.values()) & known  # all outside the zoo
    assert sum(map(len, types.values())) == len(set().union(*types.values()))  # no architecture in two sets


def test_a_head_with_several_classes_is_built_from_its_first(tmp_path: Path) -> None:
    config = {"image_size": 32, "patch_size": 8, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 32, "num_labels": 3}
    loaded = zoo.load_model(str(save_random_checkpoint("deit", tmp_path / "deit", config)))
    assert type(loaded.model) is transformers.DeiTForImageClassification  # not the distillation-teacher variant
