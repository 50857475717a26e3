"""`benchkit upgrade`: the facts that results stored by an older kit lack (forward-profile keys, OpenVINO's executed
kernels and their bytes, the forward profiles of coverage rows), counted from each result's stored parameters and
written into its `extra`. This is the one step that changes results after they are stored, and it runs only when
asked: the predictor and the recommender count what is missing in memory at every read
(`kit.predict.profiles.fill_profiles`, `kit.predict.kernels.fill_kernels`) and never write the store. The facts are
counts of the model's code and compiled graph, never timings."""

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


def upgrade_store(con: Any) -> dict[str, int]:
    """Count the forward profiles and OpenVINO kernel facts the store's ok results lack and store them; returns how
    many results gained each (0 and 0 on a store that has them all)."""
    from kit import storage
    from kit.predict.architectures import fill_architecture_profiles
    from kit.predict.kernels import fill_kernels
    from kit.predict.profiles import fill_profiles

    if storage.is_read_only(con):
        raise ConfigError("the store is open read-only: `upgrade` writes counted facts into it")
    frame = storage.results_frame(con, status="ok")
    with_profiles = fill_architecture_profiles(fill_profiles(frame))
    with_kernels = fill_kernels(with_profiles)
    storage.update_extras(con, changed_extras(frame, with_kernels))
    return {"forward_profiles": len(changed_extras(frame, with_profiles)),
            "openvino_kernels": len(changed_extras(with_profiles, with_kernels))}


def add_upgrade_arguments(parser: argparse.ArgumentParser) -> None:
    """The upgrade command's one argument: the store."""
    parser.add_argument("--db", help="DuckDB file to upgrade (default: outputs/benchkit.duckdb)")


def cmd_upgrade(args: argparse.Namespace) -> int:
    """Store the facts older results lack; print how many results gained them."""
    from kit import storage

    counts = upgrade_store(storage.connect(args.db or storage.DEFAULT_DB))
    print(f"forward profiles stored for {counts['forward_profiles']} results, OpenVINO kernel facts for "
          f"{counts['openvino_kernels']} results")
    return 0
