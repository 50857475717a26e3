"""What a recommendation shows besides its ranked table: notes and exclusions, the memory-constrained search over
budgets, and headline values a test or the report index can check."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from kit.predict import Predictor
from kit.recommend.core import best_under_budget
from kit.recommend.request import Request

SEARCH_COLUMNS = ["platform", "precision", "batch_size", "source", "throughput_items_per_s", "latency_s",
                  "peak_memory_bytes", "memory_high_bytes"]


def notes_table(table: pd.DataFrame) -> pd.DataFrame:
    """What a recommendation left out and why: one row per note (fallbacks, absent platforms) and per exclusion
    reason, with how many candidates it removed."""
    rows = [{"kind": "note", "detail": note, "n_candidates": None} for note in table.attrs.get("notes", [])]
    if len(table) and table["fallback_reason"].iloc[0]:
        rows.append({"kind": "fallback", "detail": table["fallback_reason"].iloc[0], "n_candidates": len(table)})
    excluded = table.attrs.get("excluded", pd.DataFrame())
    if len(excluded):
        reasons = excluded["reason"].str.replace(r"\S+ (GiB|ms)", r"… \1", regex=True)
        for reason, n in reasons.value_counts().items():
            rows.append({"kind": "excluded", "detail": reason, "n_candidates": int(n)})
    return pd.DataFrame(rows, columns=["kind", "detail", "n_candidates"])


def budget_search(data: Any, request: Request, predictor: Predictor | None = None) -> pd.DataFrame:
    """Memory-constrained search: for each of the request's budgets (GiB), the best precision and batch size that
    fits it (measured, or predicted with its upper memory bound under the budget), or 'nothing fits'."""
    kwargs = {k: v for k, v in request.kwargs().items() if k not in ("memory_budget_bytes", "objective")}
    rows = []
    for budget in request.budgets_gb or []:
        best = best_under_budget(data, request.model, budget * 2**30, request.objective, predictor=predictor, **kwargs)
        found = {"source": "nothing fits"} if best is None else best[SEARCH_COLUMNS].to_dict()
        rows.append({"memory_budget_gb": budget, **found})
    return pd.DataFrame(rows, columns=["memory_budget_gb", *SEARCH_COLUMNS])


def data_overview(data: pd.DataFrame) -> pd.DataFrame:
    """What the recommendation can draw on: ok results and model variants per platform, mode and family."""
    if data.empty:
        return pd.DataFrame(columns=["platform", "mode", "family", "n_results", "n_variants", "precisions"])
    return (data.groupby(["platform", "mode", "family"])
            .agg(n_results=("variant", "size"), n_variants=("variant", "nunique"),
                 precisions=("precision", lambda p: ", ".join(sorted(set(p)))))
            .reset_index())


def predictor_summary(predictor: Predictor | None) -> pd.DataFrame:
    """The predictor's chosen model per target, or one row saying there is none (candidates are measured only)."""
    if predictor is None:
        return pd.DataFrame([{"target": "all", "method": "none: fewer than two measurements, so only measured "
                                                        "candidates are ranked"}])
    return predictor.summary()


def excluded_table(table: pd.DataFrame) -> pd.DataFrame:
    """Candidates a constraint removed, with their (upper-bound) values and the reason."""
    excluded = table.attrs.get("excluded", pd.DataFrame())
    columns = ["platform", "precision", "batch_size", "source", "throughput", "latency_high", "memory_high", "reason"]
    return excluded.reindex(columns=columns).reset_index(drop=True)


def headline(table: pd.DataFrame, request: Request, evaluation: pd.DataFrame | None = None) -> dict[str, Any]:
    """Values a test or the report index can check: the pick, whether it fits the budget and the allowed (or
    fallback) platforms, counts by source, and the evaluation's hit rate and regret."""
    considered = list(request.platforms or []) + sorted(set(measured_platforms(table)) - set(request.platforms or []))
    pick = table.iloc[0] if len(table) else None
    budget = request.memory_budget_bytes
    values = {"n_ranked": len(table), "n_measured": int((table["source"] == "measured").sum()),
              "n_predicted": int((table["source"] == "predicted").sum()),
              "n_excluded": len(table.attrs.get("excluded", [])), "candidate_platforms": considered,
              "pick_platform": None if pick is None else pick["platform"],
              "pick_precision": None if pick is None else pick["precision"],
              "pick_batch_size": None if pick is None else int(pick["batch_size"]),
              "pick_source": None if pick is None else pick["source"],
              "pick_memory_high_bytes": None if pick is None else float(pick["memory_high_bytes"]),
              "memory_budget_bytes": budget,
              "pick_within_budget": None if pick is None else bool(budget is None
                                                                  or pick["memory_high_bytes"] <= budget),
              "fell_back": bool(len(table) and table["fallback_reason"].iloc[0]), "rank_by": request.rank_by}
    if evaluation is not None:
        a = evaluation.attrs
        values.update({"top1_hit_rate": None if math.isnan(a["top1_hit_rate"]) else a["top1_hit_rate"],
                       "mean_regret": None if math.isnan(a["mean_regret"]) else a["mean_regret"],
                       "n_evaluated": a["n_variants"], "evaluation_skipped_reason": a["skipped_reason"]})
    return values


def measured_platforms(table: pd.DataFrame) -> list[str]:
    """Platforms the recommendation could fall back to: those of the measured data it was built from."""
    return list(table.attrs.get("platforms_in_data", []))
