"""Ranking: a platform, precision and batch size for a model under constraints, from measurements or predictions.

Candidates are platform x precision x batch size. A measured candidate uses its latest measurement; an unmeasured one
uses `kit.predict` with its interval, and only on platforms the predictor has seen measurements of. Constraints are
checked conservatively: a prediction must fit with its upper memory (and latency) bound, and a memory budget drops
any candidate whose memory is unknown. Platforms are tried in the order allowed; when the preferred ones have no
feasible candidate, the others are used and each row says why (the fallback).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from kit.errors import ConfigError
from kit.predict import Predictor
from kit.predict.features import (
    DEPTHWISE_COSTS,
    KERNEL_COLUMNS,
    PROFILE_COLUMNS,
    TYPICAL_REFERENCE_COLUMN,
    extra_dict,
    image_size_of,
    model_facts,
    predictor_rows,
    variant_key,
)
from kit.predict.kernels import candidate_kernels, fill_kernels
from kit.predict.profiles import variant_params
from kit.predict.steady import typical_reference_of
from kit.recommend.exclusions import exclusion_reasons, platform_reasons
from kit.recommend.repeats import INTERVAL_FROM, measured_intervals

OBJECTIVES = ("throughput", "latency", "memory", "cost")
FACT_COLUMNS = ["model", "family", "size", "n_params", "flops_per_sample", "n_layers", "hidden_size", "modality",
                "seq_len", "seq_len_effective", "image_size", *PROFILE_COLUMNS, "overrides", "variant"]
RESULT_COLUMNS = ["rank", "platform", "precision", "batch_size", "mode", "source", "anchor_batches",
                  "throughput_items_per_s", "throughput_low", "throughput_high", "latency_s", "latency_low_s",
                  "latency_high_s", "interval_from", "peak_memory_bytes", "memory_high_bytes", "cost_per_million",
                  "output_rel_l2", "fallback_reason", "variant"]
SORT = {"throughput": ("throughput_items_per_s", False), "latency": ("latency_s", True),
        "memory": ("memory_high_bytes", True), "cost": ("cost_per_million", True)}
ONE_RUN_NOTE = ("measured figures marked 'within one run' carry their median's CI from that run alone, because the "
                "store holds no configuration of their machine measured in two runs; a second run lands outside most "
                "such intervals: measure the same configurations again into the store for intervals from the spread "
                "between runs")
RANK_BY = ("point", "bound")  # the point value, or the pessimistic end of each candidate's interval


def check_rank_by(rank_by: str) -> None:
    """ConfigError naming a rank_by that is neither 'point' nor 'bound'."""
    if rank_by not in RANK_BY:
        raise ConfigError(f"unknown rank_by {rank_by!r}; known: point (the point value), bound (the pessimistic end "
                          f"of each interval)")


def _check(objective: str, memory_budget_bytes: float | None, latency_bound_s: float | None,
           hourly_prices: dict[str, float] | None) -> None:
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    for name, value in (("memory_budget_bytes", memory_budget_bytes), ("latency_bound_s", latency_bound_s)):
        if value is not None and not (isinstance(value, int | float) and value > 0):
            raise ConfigError(f"{name} must be positive or None, got {value!r}")
    for platform, price in (hourly_prices or {}).items():
        if not (isinstance(price, int | float) and price >= 0 and math.isfinite(price)):
            raise ConfigError(f"hourly price of {platform!r} must be a non-negative number, got {price!r}")
    if objective == "cost" and not hourly_prices:
        raise ConfigError("objective 'cost' needs hourly_prices, e.g. {'cpu': 0.1, 'cuda': 2.5}")


def measured_frame(data: Any) -> pd.DataFrame:
    """Ok results with peaks and model facts: from a DuckDB connection (results + hardware) or a results frame."""
    from kit.predict.features import attach_peaks

    if isinstance(data, pd.DataFrame):
        frame = data
    else:
        from kit import microbench, storage
        from kit.predict.profiles import fill_profiles

        frame = fill_kernels(fill_profiles(attach_peaks(predictor_rows(storage.results_frame(data, status="ok")),
                                                        microbench.stored_peaks(data))))
    if "status" in frame:
        frame = frame[frame["status"] == "ok"]
    frame = predictor_rows(frame)
    frame = attach_peaks(frame, None) if "peak_flops_per_s" not in frame else frame
    facts = model_facts(frame)
    frame = frame.drop(columns=[c for c in facts if c in frame]).join(facts)
    return frame.assign(variant=variant_key(frame))


def _variant_rows(frame: pd.DataFrame, model: str, size: str | None, overrides: dict | None,
                  seq_len: int | None) -> tuple[pd.DataFrame, list[str]]:
    """Rows of the requested variant; without overrides, the plain config, else the most measured variant."""
    rows, notes = frame[frame["model"] == model], []
    if size is not None:
        rows = rows[rows["size"] == size]
    if seq_len is not None:
        rows = rows[rows["seq_len_effective"] == seq_len]
    wanted = json.dumps(overrides or {}, sort_keys=True)
    exact = rows[rows["overrides"] == wanted]
    if exact.empty and overrides is None and not rows.empty:
        variant = rows["variant"].value_counts().index[0]
        notes.append(f"{model} has no measurements without config overrides; using its most measured variant "
                     f"{variant}")
        exact = rows[rows["variant"] == variant]
    if exact["variant"].nunique() > 1:  # several sizes or sequence lengths: the most measured one
        exact = exact[exact["variant"] == exact["variant"].value_counts().index[0]]
    return exact, notes


def _stored_variant(rows: pd.DataFrame, model: str, size: str | None, overrides: dict | None,
                    seq_len: int | None) -> tuple[str, str, str, int | None]:
    """(model, size, overrides JSON, seq_len) of the variant: as stored with its rows, else as requested."""
    if not rows.empty and "params_json" in rows:
        return variant_params(extra_dict(rows["params_json"].iloc[0]))
    return model, size or "tiny", json.dumps(overrides or {}, sort_keys=True), seq_len


def zoo_facts(model: str, size: str = "tiny", overrides: dict | None = None, seq_len: int | None = None) -> dict:
    """Model facts of an unmeasured zoo model, by building it (random weights) and profiling one forward."""
    from kit import zoo

    loaded = zoo.load_model(model, size, overrides=overrides)
    described = loaded.describe()
    seq = seq_len or loaded.default_seq_len
    profile = zoo.forward_profile(loaded, seq_len)
    return {"model": loaded.name, "family": loaded.family, "size": size, "n_params": loaded.n_params(),
            **profile, "n_layers": described["n_layers"],
            "hidden_size": described["hidden_size"], "modality": loaded.modality, "seq_len": seq_len,
            "seq_len_effective": seq, "image_size": image_size_of(described),
            "overrides": json.dumps(overrides or {}, sort_keys=True),
            "variant": f"{loaded.name}|{size}|{json.dumps(overrides or {}, sort_keys=True)}|seq{seq or -1}"}


def _platform_peaks(frame: pd.DataFrame) -> pd.DataFrame:
    """Per platform and precision, the peaks (and depthwise costs) of the machine with most measurements there."""
    if frame.empty:
        return pd.DataFrame(columns=["platform", "precision", "hardware_id", "peak_flops_per_s",
                                     "mem_bandwidth_bytes_per_s", DEPTHWISE_COSTS])
    data = frame.assign(hardware_id=frame.get("hardware_id", pd.Series("", index=frame.index)).fillna(""))
    if DEPTHWISE_COSTS not in data:
        data = data.assign(**{DEPTHWISE_COSTS: None})
    counts = data.groupby(["platform", "precision", "hardware_id"], dropna=False).size().rename("n").reset_index()
    best = counts.sort_values("n", ascending=False).drop_duplicates(["platform", "precision"])
    peaks = data.groupby(["platform", "precision", "hardware_id"], dropna=False)[
        ["peak_flops_per_s", "mem_bandwidth_bytes_per_s", DEPTHWISE_COSTS]].first().reset_index()
    return best.drop(columns="n").merge(peaks, on=["platform", "precision", "hardware_id"], how="left")


def default_threads(frame: pd.DataFrame) -> dict[str, float]:
    """Per platform, the intra-op thread count its runs used when the sweep pinned none (the most common; else the
    most common of all its runs): what an unmeasured configuration runs with by default."""
    if "threads" not in frame or frame.empty:
        return {}
    threads = pd.to_numeric(frame["threads"], errors="coerce")
    params = frame["params_json"] if "params_json" in frame else pd.Series("{}", index=frame.index)
    pinned = params.map(lambda p: extra_dict(p).get("threads") is not None)
    out = {}
    for platform, rows in threads.groupby(frame["platform"]):
        chosen = rows[~pinned[rows.index]].dropna()
        chosen = chosen if not chosen.empty else rows.dropna()
        if not chosen.empty:
            out[platform] = float(chosen.mode().iloc[0])
    return out


def candidate_grid(frame: pd.DataFrame, facts: dict, platforms: list[str], mode: str,
                   batch_sizes: list[int] | None = None, precisions: list[str] | None = None,
                   threads: int | None = None) -> pd.DataFrame:
    """Platform x precision (seen there in this mode) x batch size rows, carrying the model's facts, peaks, depthwise
    costs and the intra-op thread count (`threads` where given, else the platform's default), with the typical
    reference speed of that machine and thread count among the measured rows (the candidates have no rounds)."""
    seen = frame[(frame["mode"] == mode) & frame["platform"].isin(platforms)]
    pairs = _platform_peaks(seen)
    if precisions is not None:
        pairs = pairs[pairs["precision"].isin(precisions)]
    sizes = sorted(set(batch_sizes or seen["batch_size"].astype(int)))
    grid = pairs.merge(pd.DataFrame({"batch_size": sizes}), how="cross")
    counts = grid["platform"].map(default_threads(seen)) if threads is None else pd.Series(threads, index=grid.index)
    grid = grid.assign(threads=counts.astype(float))
    grid = grid.assign(**{TYPICAL_REFERENCE_COLUMN: typical_reference_of(grid, seen)})
    return grid.assign(mode=mode, status="ok", **{k: facts.get(k) for k in FACT_COLUMNS})


def _fill(candidates: pd.DataFrame, measured: pd.DataFrame, predictor: Predictor | None,
          frame: pd.DataFrame) -> pd.DataFrame:
    """Measured values where this variant was measured (latest run), with the spread between runs in `frame` as their
    interval (kit.recommend.repeats); predictions with intervals elsewhere."""
    out = candidates.copy()
    for column in ("throughput", "latency", "memory"):
        for suffix in ("", "_low", "_high"):
            out[f"{column}{suffix}"] = np.nan
    out["source"], out["interval_from"] = "", ""
    keys = _match_keys(out, measured)
    if not measured.empty:
        latest = measured.sort_values("created_at").drop_duplicates(keys, keep="last")
        found = out[keys].merge(latest, on=keys, how="left").set_index(out.index)
        hit = found["throughput_items_per_s"].notna()
        values = {"throughput": found["throughput_items_per_s"], "latency": found["latency_p50_s"],
                  "memory": found["peak_memory_bytes"], "memory_low": found["peak_memory_bytes"],
                  "memory_high": found["peak_memory_bytes"]}
        for column, value in values.items():
            out.loc[hit, column] = value[hit].astype(float)
        intervals = measured_intervals(found[hit], frame)
        out.loc[hit, list(intervals)] = intervals
        out.loc[hit, "source"] = "measured"
    todo = out["source"] == ""
    if predictor is not None and todo.any():
        known = set(next(iter(predictor.models.values())).vocab.get("platform", []))
        todo &= out["platform"].isin(known)
        predicted = predictor.predict(out[todo])
        for target in predictor.models:
            out.loc[todo, target] = predicted[f"{target}_pred"]
            out.loc[todo, f"{target}_low"] = predicted[f"{target}_low"]
            out.loc[todo, f"{target}_high"] = predicted[f"{target}_high"]
        out.loc[todo, ["source", "interval_from"]] = "predicted", INTERVAL_FROM["predicted"]
        out = _anchor(out, predictor)
    return out[out["source"] != ""]


def _match_keys(candidates: pd.DataFrame, measured: pd.DataFrame) -> list[str]:
    """Columns a measurement must share with a candidate to stand for it: platform, precision, batch size, mode and,
    where both say, the thread count (one thread and the default differ by up to 2x)."""
    keys = ["platform", "precision", "batch_size", "mode"]
    both = "threads" in candidates and "threads" in measured and candidates["threads"].notna().any()
    return [*keys, "threads"] if both else keys


def _anchor(out: pd.DataFrame, predictor: Predictor) -> pd.DataFrame:
    """Correct each prediction (point and interval) by measured / predicted at the measured batch sizes of the same
    platform, precision and mode: between two measured batches the log correction is interpolated linearly in log
    batch size, outside them the nearest one's is used; `anchor_batches` names them ('' when none was measured)."""
    out = out.assign(anchor_batches="")
    measured = out[out["source"] == "measured"]
    predicted = out.index[out["source"] == "predicted"]
    if measured.empty or predicted.empty:
        return out
    at_measured = predictor.predict(measured)
    log_ratios = {t: np.log(measured[t] / at_measured[f"{t}_pred"]) for t in predictor.models}
    for index in predicted:
        row = out.loc[index]
        same = measured[(measured["platform"] == row["platform"]) & (measured["precision"] == row["precision"])
                        & (measured["mode"] == row["mode"])]
        if "threads" in same and pd.notna(row.get("threads")):
            same = same[same["threads"] == row["threads"]]
        if same.empty:
            continue
        weights = _interpolation_weights(np.log(same["batch_size"].astype(float)), np.log(float(row["batch_size"])))
        for target, log_ratio in log_ratios.items():
            if log_ratio[weights.index].notna().all():
                factor = float(np.exp((log_ratio[weights.index] * weights).sum()))
                for column in (target, f"{target}_low", f"{target}_high"):
                    out.at[index, column] = out.at[index, column] * factor
        out.at[index, "anchor_batches"] = ", ".join(str(int(b)) for b in sorted(same.loc[weights.index, "batch_size"]))
    return out


def _interpolation_weights(log_batches: pd.Series, log_batch: float) -> pd.Series:
    """Weights of the measured batches (indexed like them) for a linear interpolation in log batch size: the two
    that bracket the wanted batch, else the nearest alone."""
    below, above = log_batches[log_batches <= log_batch], log_batches[log_batches >= log_batch]
    if below.empty or above.empty:
        return pd.Series([1.0], index=[(log_batches - log_batch).abs().idxmin()])
    low, high = below.idxmax(), above.idxmin()
    if log_batches[high] == log_batches[low]:
        return pd.Series([1.0], index=[low])
    share = (log_batch - log_batches[low]) / (log_batches[high] - log_batches[low])
    return pd.Series([1 - share, share], index=[low, high])


def _scaled(table: pd.DataFrame, to_today: dict[str, float] | None) -> pd.DataFrame:
    """Throughput and latency (points and intervals) times their factor; unchanged without factors."""
    if not to_today:
        return table
    columns = {f"{target}{suffix}": to_today[target] for target in ("throughput", "latency")
               for suffix in ("", "_low", "_high")}
    return table.assign(**{column: table[column] * factor for column, factor in columns.items()})


def _tidy(table: pd.DataFrame, hourly_prices: dict | None) -> pd.DataFrame:
    prices = table["platform"].map(hourly_prices or {}).astype(float)
    return table.assign(
        throughput_items_per_s=table["throughput"], latency_s=table["latency"], latency_low_s=table["latency_low"],
        latency_high_s=table["latency_high"], peak_memory_bytes=table["memory"], memory_high_bytes=table["memory_high"],
        cost_per_million=prices / 3600 / table["throughput"] * 1e6)


def _pessimistic(table: pd.DataFrame, objective: str) -> pd.Series:
    """Each candidate's objective at the bad end of its interval: the lowest throughput, the highest latency and
    memory, and the cost at the lowest throughput (NaN where a candidate has no interval)."""
    if objective == "cost":
        return table["cost_per_million"] * table["throughput_items_per_s"] / table["throughput_low"]
    bad_end = {"throughput": "throughput_low", "latency": "latency_high_s", "memory": "memory_high_bytes"}
    return table[bad_end[objective]]


def rank(table: pd.DataFrame, objective: str, rank_by: str = "point") -> pd.DataFrame:
    """Sort candidates by the objective's point value, or with rank_by='bound' by the pessimistic end of their
    interval (a wide prediction no longer outranks a measurement it may fall below; the point value where there is no
    interval); measured before predicted on ties; number them from 1."""
    check_rank_by(rank_by)
    column, ascending = SORT[objective]
    key = table[column] if rank_by == "point" else _pessimistic(table, objective).fillna(table[column])
    order = table.assign(_key=key, _measured=table["source"] != "measured")
    order = order.sort_values(["_key", "_measured", "throughput_items_per_s"], ascending=[ascending, True, False],
                              na_position="last", kind="stable").drop(columns=["_key", "_measured"])
    return order.assign(rank=range(1, len(order) + 1)).reset_index(drop=True)


def recommend(data: Any, model: str, objective: str = "throughput", *, memory_budget_bytes: float | None = None,
              latency_bound_s: float | None = None, platforms_allowed: list[str] | None = None,
              hourly_prices: dict[str, float] | None = None, predictor: Predictor | None = None,
              mode: str = "inference", size: str | None = None, overrides: dict | None = None,
              seq_len: int | None = None, batch_sizes: list[int] | None = None, precisions: list[str] | None = None,
              facts: dict | None = None, fallback: bool = True, max_rel_l2: float | None = None,
              rank_by: str = "point", threads: int | None = None,
              to_today: dict[str, float] | None = None) -> pd.DataFrame:
    """Feasible platform x precision x batch configurations of a model, best first for the objective.

    `data` is a DuckDB connection or a results frame. `platforms_allowed` is an order of preference; with `fallback`,
    other measured platforms are used when none of them has a feasible candidate, and `fallback_reason` says why.
    `attrs` holds `notes`, `excluded` (candidates that fail a constraint, with the reason) and `model_facts`.
    `max_rel_l2` bounds the output's relative L2 error against fp32 PyTorch (measured per platform and precision), so
    that a fast but inexact precision (e.g. int8) is not recommended when accuracy matters. `rank_by` is 'point' or
    'bound' (rank by the pessimistic end of each interval, see `rank`). `threads` is the intra-op thread count the
    candidates run with (default: each platform's default, `default_threads`); only measurements made with it stand
    for a candidate. `to_today` ({'throughput': f, 'latency': g}, kit.predict.steady.factors_to_today) turns the
    figures of data on the steady scale into today's before constraints and ranking apply.
    """
    _check(objective, memory_budget_bytes, latency_bound_s, hourly_prices)
    check_rank_by(rank_by)
    if threads is not None and not (isinstance(threads, int) and not isinstance(threads, bool) and threads > 0):
        raise ConfigError(f"threads must be a positive whole number or None, got {threads!r}")
    if max_rel_l2 is not None and not (isinstance(max_rel_l2, int | float) and max_rel_l2 >= 0):
        raise ConfigError(f"max_rel_l2 must be a non-negative number or None, got {max_rel_l2!r}")
    if mode not in ("inference", "training"):
        raise ConfigError(f"mode must be 'inference' or 'training', got {mode!r}")
    frame = measured_frame(data)
    rows, notes = _variant_rows(frame, model, size, overrides, seq_len)
    if facts is None:
        facts = rows.iloc[0][FACT_COLUMNS].to_dict() if not rows.empty else zoo_facts(model, size or "tiny",
                                                                                       overrides, seq_len)
    in_data = sorted(frame["platform"].unique())
    preferred = list(platforms_allowed or in_data)
    platforms = preferred + ([p for p in in_data if p not in preferred] if fallback else [])
    if predictor is None and len(frame) >= 2:
        predictor = Predictor().fit(frame)
    candidates = candidate_grid(frame, facts, platforms, mode, batch_sizes, precisions, threads)
    candidates[list(KERNEL_COLUMNS)] = candidate_kernels(candidates, rows, _stored_variant(rows, model, size,
                                                                                          overrides, seq_len))
    table = _scaled(_fill(candidates, rows, predictor, frame), to_today)
    constraints = {"memory_budget_bytes": memory_budget_bytes, "latency_bound_s": latency_bound_s,
                   "hourly_prices": hourly_prices, "objective": objective, "max_rel_l2": max_rel_l2}
    table, reasons = exclusion_reasons(table, data, rows, constraints, model, size, facts.get("overrides") or "{}")
    feasible = table[reasons == ""]
    why = platform_reasons(preferred, frame, table, reasons)
    usable = [p for p in preferred if p in set(feasible["platform"])]
    fallback_reason = ""
    if usable:
        feasible = feasible[feasible["platform"].isin(usable)]
    elif not feasible.empty:
        fallback_reason = "; ".join(why.values()) + f"; fell back to {', '.join(sorted(set(feasible['platform'])))}"
    notes += [f"{p}: {reason}" for p, reason in why.items()]
    result = rank(_tidy(feasible.assign(fallback_reason=fallback_reason), hourly_prices), objective, rank_by)
    result = result.reindex(columns=RESULT_COLUMNS)
    if (result["interval_from"] == INTERVAL_FROM["run"]).any():
        notes.append(ONE_RUN_NOTE)
    result.attrs = {"notes": notes, "excluded": table[reasons != ""].assign(reason=reasons[reasons != ""]),
                    "model_facts": facts, "platforms_in_data": in_data}
    return result


def best_under_budget(data: Any, model: str, memory_budget_bytes: float, objective: str = "throughput",
                      **kwargs: Any) -> pd.Series | None:
    """The best precision and batch size whose memory (upper bound if predicted) fits the budget; None if none."""
    ranked = recommend(data, model, objective, memory_budget_bytes=memory_budget_bytes, **kwargs)
    return None if ranked.empty else ranked.iloc[0]
