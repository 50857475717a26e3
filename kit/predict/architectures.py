"""Training rows from `benchkit coverage`: the architectures transformers knows, each built at a shrunk size and
measured once per platform, as rows the predictor can learn from beside the zoo's. They are opt-in: `predictor_rows`
leaves coverage rows out unless `architecture_rows` marked them, and notebook 04 scores leave-one-family-out on the
zoo's rows with and without them (`architecture_scores`), so their worth is measured, not assumed.

Rows stored without a forward profile, or without some of its keys (by a kit that did not count them), get it
counted here, in memory, by building the architecture again from transformers' own classes; `benchkit upgrade`
stores it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from kit.predict.features import PROFILE_COLUMNS, TARGETS, extra_dict

log = logging.getLogger(__name__)

MARK = "predictor_row"  # extra key that lets predictor_rows keep a coverage row
TOKEN_MODALITIES = ("text", "vision-text", "text-to-audio")  # inputs whose seq_len is a token count


def is_coverage(extra: dict) -> bool:
    """A row of `benchkit coverage` (extra coverage: true)."""
    return bool(extra.get("coverage"))


def zoo_family_by_config() -> dict[str, str]:
    """{config class name: zoo family}: the family a coverage row of the same architecture belongs to."""
    from kit.zoo.families import REGISTRY

    return {family.config_class: name for name, family in REGISTRY.items()}


def _architecture(model_type: str, extra: dict) -> Any:
    from kit.coverage.architectures import Architecture

    return Architecture(model_type, extra["config_class"], extra["model_class"], extra.get("auto_mapping", ""),
                        extra.get("modality", "unknown"), ())


def count_architecture(model_type: str, extra: dict, seq_len: int) -> dict[str, Any]:
    """The forward profile (flops_per_sample included) and model facts of a coverage row's architecture, built again
    at the same shrunk size; {} (logged) when it cannot be built here."""
    from kit.coverage.measure import build_model, loaded_architecture, profile_facts

    try:
        arch = _architecture(model_type, extra)
        model, config = build_model(arch)
        fields, counted = profile_facts(loaded_architecture(arch, model, config, seq_len), seq_len)
    except Exception as exc:  # a back-fill is best effort: the row stays out of the training data
        log.warning("cannot count the forward profile of %s: %s: %s", model_type, type(exc).__name__, exc)
        return {}
    return {"forward_profile": {**counted["forward_profile"], "flops_per_sample": fields["flops_per_sample"]},
            "model_facts": counted["model_facts"]}


def lacks_profile(extra: dict) -> bool:
    """A coverage row whose stored forward profile lacks a key of PROFILE_COLUMNS (or the whole profile)."""
    return is_coverage(extra) and not set(PROFILE_COLUMNS) <= set(extra.get("forward_profile") or {})


def _merged(extra: dict, counted: dict[str, Any]) -> dict[str, Any]:
    """The row's extra with the counted profile and facts added; values it stored are kept."""
    stored = extra.get("forward_profile") or {}
    profile = {**counted["forward_profile"], **{k: v for k, v in stored.items() if v is not None}}
    facts = {**counted["model_facts"], **(extra.get("model_facts") or {})}
    added = sorted(k for k in profile if stored.get(k) is None)
    return {**extra, "forward_profile": profile, "model_facts": facts, "profile_counted_later": added}


def fill_architecture_profiles(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the forward profile and model facts counted for its coverage rows stored without them or
    some of their keys (once per architecture; extra['profile_counted_later'] names the keys added); other rows
    unchanged."""
    if frame.empty or "extra" not in frame:
        return frame
    extras = frame["extra"].map(extra_dict)
    missing = extras.map(lacks_profile)
    if not missing.any():
        return frame
    log.info("counting the forward profiles of %d coverage rows stored without them", int(missing.sum()))
    out, counted = frame.copy(), {}
    for index in frame.index[missing]:
        extra, model_type = extras[index], str(frame.at[index, "model"])
        seq_len = int(frame.at[index, "seq_len"]) if pd.notna(frame.at[index, "seq_len"]) else 16
        if model_type not in counted:
            counted[model_type] = count_architecture(model_type, extra, seq_len)
        if counted[model_type]:
            out.at[index, "extra"] = json.dumps(_merged(extra, counted[model_type]))
    return out


def architecture_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok coverage rows of a results frame as training rows: forward profiles counted where missing, FLOPs from
    the profile where the column lacks them, the family of the zoo family built from the same config class (else the
    model type, so that holding a family out holds out its coverage rows too), seq_len kept only where the input is
    tokens, and marked so that `predictor_rows` keeps them."""
    if frame.empty or "extra" not in frame:
        return frame.iloc[:0]
    ok = frame[(frame["status"] == "ok") & frame["extra"].map(lambda e: is_coverage(extra_dict(e)))]
    ok = fill_architecture_profiles(ok[pd.to_numeric(ok[TARGETS["throughput"]], errors="coerce") > 0])
    if ok.empty:
        return ok
    extras = ok["extra"].map(extra_dict)
    out = ok.copy()
    profile_flops = extras.map(lambda e: (e.get("forward_profile") or {}).get("flops_per_sample"))
    out["flops_per_sample"] = pd.to_numeric(out["flops_per_sample"], errors="coerce").fillna(
        pd.to_numeric(profile_flops, errors="coerce"))
    families = zoo_family_by_config()
    out["family"] = [families.get(e.get("config_class"), m) for e, m in zip(extras, out["model"], strict=True)]
    tokens = extras.map(lambda e: e.get("modality") in TOKEN_MODALITIES)
    out["seq_len"] = out["seq_len"].where(tokens, np.nan)
    out["extra"] = extras.map(lambda e: json.dumps({**_compiled_facts(e), **e, MARK: True}))
    return out[out["flops_per_sample"] > 0]


def _compiled_facts(extra: dict) -> dict[str, Any]:
    """OpenVINO's executed kernels and their bytes, which a coverage row keeps among its platform facts, where
    kit.predict.features reads them."""
    from kit.predict.kernels import COMPILED_FACTS

    facts = extra.get("platform_facts") or {}
    return {k: facts[k] for k in COMPILED_FACTS if facts.get(k) is not None}


def architecture_frame(con: Any, run_id: str | None = None) -> pd.DataFrame:
    """The ok coverage rows of a run (None: of every run) as the predictor's features, with their machine's measured
    peaks: the rows notebook 04 adds to the zoo's training data (empty when the store holds none)."""
    from kit import microbench, storage
    from kit.predict.features import feature_frame

    rows = architecture_rows(storage.results_frame(con, run_id, status="ok"))
    return feature_frame(rows, microbench.stored_peaks(con)) if not rows.empty else rows


SCORE_COLUMNS = ["n_extra_training", "families_trained", "n", "mape", "median_ape", "within_10", "coverage"]


def architecture_scores(frame: pd.DataFrame, rows: pd.DataFrame, template: Any, measured: Any = None
                        ) -> pd.DataFrame:
    """Leave-one-family-out throughput scores on the frame's (zoo) rows, trained on the other families' rows alone
    and with the architecture rows of every other family added (those of the frame's platforms); the same held-out
    rows either way. `measured`: the frame's throughput Validation with the template's settings, reused for the
    first line."""
    from kit.predict.validation import scores_table, validate_throughput

    rows = rows[rows["platform"].isin(set(frame["platform"]))] if not rows.empty else rows  # e.g. no wasm rows
    without = measured or validate_throughput(frame, template)
    lines = [("zoo families only", without, 0, frame)]
    if not rows.empty:
        with_rows = validate_throughput(frame, template, extra_training=rows)
        lines.append(("with coverage architectures", with_rows, len(rows), pd.concat([frame, rows])))
    table = []
    for label, validation, n_extra, trained in lines:
        score = scores_table({"throughput": validation}).loc[("throughput", "predictor")]
        table.append({"training": label, "n_extra_training": n_extra,
                      "families_trained": trained[template.group_column].nunique(),
                      **score[["n", "mape", "median_ape", "within_10", "coverage"]].to_dict()})
    return pd.DataFrame(table, columns=["training", *SCORE_COLUMNS]).set_index("training")
