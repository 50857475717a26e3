"""Provenance: the machine's facts, and GPU facts read without a CUDA context in the calling process."""

import torch

from kit import environment
from kit.runners import isolation


def test_hardware_info_has_a_stable_fingerprint():
    first, second = environment.hardware_info(), environment.hardware_info()
    assert first["hardware_id"] == second["hardware_id"] and first["cores_logical"] >= 1


def test_gpu_properties_are_read_in_a_child(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: (_ for _ in ()).throw(AssertionError("parent")))
    monkeypatch.setattr(isolation, "run_in_child",
                        lambda target, payload, timeout_s: calls.append(target) or isolation.ChildOutcome(True, []))
    assert environment.gpu_devices() == [] and calls == ["kit.environment:gpu_properties"]


def test_a_failed_gpu_query_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(isolation, "run_in_child",
                        lambda *a, **k: isolation.ChildOutcome(False, reason="timed out after 120 s"))
    assert environment.gpu_devices() == [{"error": "timed out after 120 s"}]
    assert environment.hardware_info()["hardware_id"]


def test_gpu_properties_match_what_torch_sees():
    props = environment.gpu_properties()
    assert len(props) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert all(p["memory_bytes"] > 0 and p["name"] for p in props)
