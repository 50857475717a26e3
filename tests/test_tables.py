"""Readable tables of records: the measured configurations, and the others counted per reason."""

from __future__ import annotations

from kit.records import Record
from kit.tables import reasons_table, summary_table


def identity(platform: str, batch_size: int = 1) -> dict:
    return dict(run_id="r", config_key=f"bert|{platform}|{batch_size}", model="bert", family="bert", size="tiny",
                mode="inference", platform=platform, device=platform, precision="fp32", batch_size=batch_size)


def records() -> list[Record]:
    long_reason = "CUDA is not available on this machine: torch.cuda.is_available() is False " + "x" * 150
    return [Record.from_samples([0.002, 0.001, 0.003], **identity("cpu")),
            *[Record.failure("skipped", long_reason + "\nmore", **identity("cuda", b)) for b in (1, 2, 4, 8)],
            Record.failure("failed", "RuntimeError: boom\ntraceback", **identity("openvino"))]


def test_summary_table_keeps_the_status_asked_for():
    assert len(summary_table(records())) == 6
    measured = summary_table(records(), status="ok")
    assert list(measured["platform"]) == ["cpu"] and measured["latency_p50_ms"].iloc[0] == 2.0
    assert summary_table(records(), status="running").empty


def test_reasons_table_counts_each_reason_whole_with_examples():
    table = reasons_table(records())
    assert list(table["status"]) == ["failed", "skipped"] and list(table["configurations"]) == [1, 4]
    skipped = table.iloc[1]
    assert skipped["reason"].endswith("x" * 150) and "more" not in skipped["reason"]  # the whole first line
    assert skipped["examples"] == "bert cuda/fp32 bs1, bert cuda/fp32 bs2, bert cuda/fp32 bs4, ..."
    assert reasons_table(records()[:1]).empty
