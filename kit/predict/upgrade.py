"""`benchkit upgrade`: what results stored by an older kit lack, computed from what was stored with them and written
into their `extra`: the facts counted from each result's parameters (forward-profile keys, OpenVINO's executed kernels
and their bytes, the forward profiles of coverage rows) and, for results measured in rounds beside the machine
reference, the normalised latency from their stored samples and the reference's per-round medians. This is the one
step that changes results after they are stored, and it runs only when asked: the predictor and the recommender count
missing facts in memory at every read (`kit.predict.profiles.fill_profiles`, `kit.predict.kernels.fill_kernels`) and
never write the store. Nothing is measured again: the facts are counts of the model's code and compiled graph, and
the normalised latency a statistic of the stored samples."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import pandas as pd

from kit.errors import ConfigError
from kit.predict.features import extra_dict

log = logging.getLogger(__name__)


def changed_extras(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """{result_id: extra} of the rows whose `extra` differs between two versions of one results frame."""
    changed = after["extra"].ne(before["extra"])
    return {rid: extra_dict(extra) for rid, extra in zip(after.loc[changed, "result_id"], after.loc[changed, "extra"],
                                                          strict=True)}


def missing_normalised_latency(con: Any) -> dict[str, dict[str, Any]]:
    """{result_id: extra with extra['rounds']['normalised_latency']} for the ok results measured in rounds beside the
    machine reference whose stored extra lacks it, computed from their stored samples
    (`kit.runners.rounds.normalised_latency`)."""
    from kit.runners.rounds import normalised_latency

    rows = con.execute("""
        SELECT r.result_id, any_value(r.extra), list(s.latency_s ORDER BY s.sample_idx),
               list(s.round_idx ORDER BY s.sample_idx)
        FROM results r JOIN samples s USING (result_id)
        WHERE r.status = 'ok' AND s.round_idx IS NOT NULL
          AND json_extract(r.extra, '$.rounds.reference_round_medians_s') IS NOT NULL
          AND json_extract(r.extra, '$.rounds.normalised_latency') IS NULL
        GROUP BY r.result_id""").fetchall()
    out = {}
    for result_id, extra_json, samples, sample_rounds in rows:
        extra = extra_dict(extra_json)
        info = extra["rounds"]
        out[result_id] = {**extra, "rounds": {**info, "normalised_latency": normalised_latency(
            samples, sample_rounds, info["reference_round_medians_s"])}}
    return out


def upgrade_store(con: Any) -> dict[str, int]:
    """Store what the store's ok results lack: their normalised latency, then the forward profiles and OpenVINO
    kernel facts; returns how many results gained each (all 0 on a store that has them all)."""
    from kit import storage
    from kit.predict.architectures import fill_architecture_profiles
    from kit.predict.kernels import fill_kernels
    from kit.predict.profiles import fill_profiles

    if storage.is_read_only(con):
        raise ConfigError("the store is open read-only: `upgrade` writes counted facts into it")
    latency = storage.update_extras(con, missing_normalised_latency(con))
    frame = storage.results_frame(con, status="ok")
    with_profiles = fill_architecture_profiles(fill_profiles(frame))
    with_kernels = fill_kernels(with_profiles)
    storage.update_extras(con, changed_extras(frame, with_kernels))
    return {"forward_profiles": len(changed_extras(frame, with_profiles)),
            "openvino_kernels": len(changed_extras(with_profiles, with_kernels)), "normalised_latency": latency}


def upgrade_summary(counts: dict[str, int]) -> str:
    """What an upgrade stored, in words."""
    return (f"forward profiles stored for {counts['forward_profiles']} results, OpenVINO kernel facts for "
            f"{counts['openvino_kernels']} results, normalised latency for {counts['normalised_latency']} results")


def add_upgrade_arguments(parser: argparse.ArgumentParser) -> None:
    """The upgrade command's one argument: the store."""
    parser.add_argument("--db", help="DuckDB file to upgrade (default: outputs/benchkit.duckdb)")


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Store the facts older results lack; print how many results gained them."""
    from kit import storage

    print(upgrade_summary(upgrade_store(storage.connect(args.db or storage.DEFAULT_DB))))
    return 0
