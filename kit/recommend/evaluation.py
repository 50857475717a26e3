"""How good are recommendations made without a model's own measurements? Each family is left out in turn, its
variants' configurations ranked from predictions trained on the others, and the pick compared with the measured best;
`repeat_picks` is their null experiment (the picks a second measurement makes); `check_predictions` compares what a
store predicts with results measured later, elsewhere.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from kit.errors import ConfigError
from kit.predict import Predictor
from kit.predict.features import KERNEL_COLUMNS, TARGETS, numeric_column
from kit.recommend.core import (
    FACT_COLUMNS,
    OBJECTIVES,
    RANK_BY,
    _check,
    _fill,
    _tidy,
    check_rank_by,
    measured_frame,
    rank,
)

EVALUATION_TARGET = {"throughput": "throughput", "latency": "latency", "memory": "memory", "cost": "throughput"}
EVALUATION_COLUMNS = ["variant", "threads", "group", "n_configs", "chosen", "best", "hit", "regret", "chosen_result",
                      "best_result"]
# one recommendation case: a model variant at one intra-op thread count (the recommendation ranks the configurations
# of one count; a count measured too is another case, never a stand-in)
CASE_KEYS = ["variant", "threads"]


def _with_threads(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a numeric `threads` column: each result's intra-op thread count, NaN where none was recorded."""
    return frame.assign(threads=numeric_column(frame, "threads"))


def _objective_value(configs: pd.DataFrame, objective: str, hourly_prices: dict | None) -> pd.Series:
    """The measured objective per configuration (cost per million from the hourly price; NaN without one)."""
    if objective == "cost":
        prices = configs["platform"].map(hourly_prices or {}).astype(float)
        return prices / 3600 / configs["throughput_items_per_s"].astype(float) * 1e6
    return configs[TARGETS[objective]].astype(float)


def _best(values: pd.Series, objective: str) -> Any:
    """The index of the best value: the highest throughput, else the lowest latency, memory or cost."""
    return values.idxmax() if objective == "throughput" else values.idxmin()


def _regret(best: float, chosen: float, objective: str) -> float:
    """How much worse the chosen value is than the best, as a fraction."""
    return float((best / chosen if objective == "throughput" else chosen / best) - 1.0)


def _evaluated(result: list[dict], reason: str, unscored: str = "") -> pd.DataFrame:
    table = pd.DataFrame(result, columns=EVALUATION_COLUMNS)
    table.attrs = {"top1_hit_rate": float(table["hit"].mean()) if len(table) else math.nan,
                   "mean_regret": float(table["regret"].mean()) if len(table) else math.nan,
                   "median_regret": float(table["regret"].median()) if len(table) else math.nan,
                   "n_variants": len(table), "skipped_reason": "" if len(table) else reason,
                   "unscored": unscored}
    return table


def evaluate_recommendations(data: Any, objective: str = "throughput", group_column: str = "family",
                             make_predictor: Any = None, mode: str = "inference",
                             hourly_prices: dict[str, float] | None = None, rank_by: str = "point") -> pd.DataFrame:
    """Per model variant and thread count (CASE_KEYS): the configuration recommended (ranked by `rank_by`) from
    predictions trained without its family (none of its own measurements) against the measured best; `attrs` holds
    top-1 hit rate, mean/median regret (how much worse the pick is than the best, as a fraction), `unscored` (held-out
    groups whose training data could not be learnt from, with why) and, when nothing could be evaluated,
    `skipped_reason`."""
    return evaluate_rankings(data, objective, group_column, make_predictor, mode, hourly_prices, (rank_by,))[rank_by]


def evaluate_rankings(data: Any, objective: str = "throughput", group_column: str = "family",
                      make_predictor: Any = None, mode: str = "inference",
                      hourly_prices: dict[str, float] | None = None,
                      rank_bys: tuple[str, ...] = RANK_BY) -> dict[str, pd.DataFrame]:
    """evaluate_recommendations for each of `rank_bys`, on the same cases from the same fitted predictors."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    _check(objective, None, None, hourly_prices)
    for rank_by in rank_bys:
        check_rank_by(rank_by)
    frame = _with_threads(measured_frame(data))
    frame = frame[frame["mode"] == mode]
    groups = sorted(frame[group_column].astype(str).unique())
    if len(groups) < 2:
        why = (f"evaluation leaves one {group_column} out at a time and needs measurements of two or more; the {mode} "
               f"data holds {len(groups)} ({', '.join(groups) or 'none'})")
        return {rank_by: _evaluated([], why) for rank_by in rank_bys}
    target = EVALUATION_TARGET[objective]
    out: dict[str, list[dict]] = {rank_by: [] for rank_by in rank_bys}
    unscored: list[str] = []  # held-out groups whose training data could not be learnt from
    for group in groups:
        held = frame[frame[group_column].astype(str) == group]
        train = frame[frame[group_column].astype(str) != group]
        try:
            predictor = (make_predictor or (lambda: Predictor(targets=(target,))))().fit(train)
        except ConfigError as error:  # the other families hold too few rows to learn from
            unscored.append(f"{group} ({error})")
            continue
        cases = [(variant, threads, _configs(vrows, objective, hourly_prices))
                 for (variant, threads), vrows in held.groupby(CASE_KEYS, dropna=False)]
        cases = [case for case in cases if len(case[2]) >= 2]
        tables = _predicted([configs for *_, configs in cases], predictor, hourly_prices)
        for (variant, threads, configs), table in zip(cases, tables, strict=True):
            for rank_by, picked in _picks(configs, table, objective, rank_bys).items():
                out[rank_by].append({"variant": variant, "threads": threads, "group": group, **picked})
    why = f"no held-out {mode} variant has two or more measured configurations to choose between"
    if unscored:
        why += f"; not scored: {'; '.join(unscored)}"
    return {rank_by: _evaluated(rows, why, "; ".join(unscored)) for rank_by, rows in out.items()}


EVALUATION_KEYS = ["platform", "precision", "batch_size", "mode"]


def _configs(vrows: pd.DataFrame, objective: str, hourly_prices: dict | None) -> pd.DataFrame:
    """A variant's measured configurations (the latest of each) with their objective value `_value`."""
    configs = vrows.sort_values("created_at").drop_duplicates(EVALUATION_KEYS, keep="last").reset_index(drop=True)
    configs = configs.assign(_value=_objective_value(configs, objective, hourly_prices))
    return configs[configs["_value"].notna()].reset_index(drop=True)


def _predicted(cases: list[pd.DataFrame], predictor: Predictor, hourly_prices: dict | None) -> list[pd.DataFrame]:
    """Per case, its configurations as the recommender's table of predictions (nothing measured), all cases predicted
    in one call (a prediction depends on its own row alone; each call costs the same at any size)."""
    if not cases:
        return []
    extra = [c for c in ("threads", *KERNEL_COLUMNS) if c in cases[0]]  # kernels: compiled, not measured
    columns = EVALUATION_KEYS + FACT_COLUMNS + ["hardware_id", "peak_flops_per_s", "mem_bandwidth_bytes_per_s", *extra]
    inputs = pd.concat([configs[columns].assign(_case=i) for i, configs in enumerate(cases)], ignore_index=True)
    empty = cases[0].iloc[:0]
    table = _tidy(_fill(inputs.assign(status="ok"), empty, predictor, empty), hourly_prices)
    return [table[table["_case"] == i].drop(columns="_case").reset_index(drop=True) for i in range(len(cases))]


def _picks(configs: pd.DataFrame, table: pd.DataFrame, objective: str,
           rank_bys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per rank_by: the pick among a variant's measured configurations (`_configs`) ranked from their predictions
    (`table`), beside the measured best ({} when none could be predicted)."""
    keys = EVALUATION_KEYS
    best = configs.loc[_best(configs["_value"], objective)]
    picks = {}
    for rank_by in rank_bys:
        ranked = rank(table, objective, rank_by)
        if ranked.empty:  # e.g. a platform the training data never saw
            continue
        chosen = configs.set_index(keys).loc[tuple(ranked.iloc[0][keys])]
        regret = _regret(best["_value"], chosen["_value"], objective)
        picks[rank_by] = {"n_configs": len(configs), "chosen": "|".join(map(str, ranked.iloc[0][keys])),
                          "best": "|".join(map(str, best[keys])), "hit": bool(regret == 0.0), "regret": regret,
                          "chosen_result": chosen.get("result_id"), "best_result": best.get("result_id")}
    return picks


def repeat_picks(first: Any, second: Any, objective: str = "throughput", mode: str = "inference",
                 hourly_prices: dict[str, float] | None = None) -> pd.DataFrame:
    """The recommendation's null experiment: per model variant and thread count (CASE_KEYS) measured in both (two runs,
    e.g. two stores), the best configuration by the second measurement against the best by the first, over the
    configurations both hold; `attrs`
    as `evaluate_recommendations` (hit rate, regret on the first's values). It is the hit rate a predictor as good as
    a second measurement reaches: ties within the machine's spread between runs make it less than 1."""
    _check(objective, None, None, hourly_prices)
    frames = []
    for data in (first, second):
        frame = _with_threads(measured_frame(data))
        frame = frame[frame["mode"] == mode]
        frame = frame.sort_values("created_at").drop_duplicates([*CASE_KEYS, *EVALUATION_KEYS], keep="last")
        frames.append(frame.assign(_value=_objective_value(frame, objective, hourly_prices)).dropna(subset="_value"))
    keys = [*CASE_KEYS, *EVALUATION_KEYS]
    both = frames[0].merge(frames[1][[*keys, "_value"]], on=keys, suffixes=("", "_again"))
    rows = []
    for (variant, threads), configs in both.groupby(CASE_KEYS, dropna=False):
        if len(configs) < 2:
            continue
        best, chosen = _best(configs["_value"], objective), _best(configs["_value_again"], objective)
        rows.append({"variant": variant, "threads": threads, "group": configs["family"].iloc[0],
                     "n_configs": len(configs),
                     "chosen": "|".join(map(str, configs.loc[chosen, EVALUATION_KEYS])),
                     "best": "|".join(map(str, configs.loc[best, EVALUATION_KEYS])), "hit": bool(best == chosen),
                     "regret": _regret(configs["_value"][best], configs["_value"][chosen], objective),
                     "chosen_result": configs.get("result_id", {}).get(chosen),
                     "best_result": configs.get("result_id", {}).get(best)})
    return _evaluated(rows, "no variant has two or more configurations measured in both")


def ranking_scores(data: Any, group_column: str = "family", make_predictor: Any = None, mode: str = "inference",
                   samples: Any = None) -> pd.DataFrame:
    """Top-1 hit rate and regret of throughput recommendations made without a family's measurements, on the measured
    and on the steady scale (kit.predict.steady: beside the machine reference, so drift between runs does not pick
    the 'best'), each ranked by the point value and by the interval's pessimistic end; the same cases throughout
    (the results measured in rounds with the reference). With `samples` (the store the results came from), also
    how often the pick is the best or one its rounds cannot tell from the best (`tell_apart`)."""
    from kit.predict.steady import steady_frame

    frame = measured_frame(data)
    steady = steady_frame(frame)
    rounds = _round_rows(samples) if samples is not None else None
    rows = []
    for scale, scaled in (("measured", frame.loc[steady.index]), ("steady", steady)):
        for rank_by, evaluation in evaluate_rankings(scaled, "throughput", group_column, make_predictor,
                                                     mode).items():
            if rounds is not None:
                evaluation = tell_apart(evaluation, rounds)
            rows.append({"scale": scale, "rank_by": rank_by, **evaluation_summary(evaluation).iloc[0].to_dict()})
    return pd.DataFrame(rows).set_index(["scale", "rank_by"])


def tell_apart(evaluation: pd.DataFrame, source: Any, objective: str = "throughput") -> pd.DataFrame:
    """The evaluation with `tie` per case: True for a hit and for a miss whose pick and best ran in one group of
    interleaved rounds that cannot tell them apart (the 95 % interval of their paired ratio holds 1;
    kit.analysis.speedups.pair_estimate), False for a miss worse beyond that interval, NaN where they did not run in
    one group (the interval between rounds of separate runs calls most repeats of one configuration a change:
    benchmarks/cross_run_intervals.py, docs/prediction.md). `source`: the results with their samples (a store,
    or `kit.analysis.frames.results_with_samples` of it). attrs gain `hit_or_tie_rate`, the share of all cases that
    are hits or ties (a miss not told counts as a miss), and `n_told`, the cases with a known answer."""
    if objective not in ("throughput", "latency"):
        raise ConfigError(f"ties are told for the throughput and latency objectives, not {objective!r}")
    rows = source if isinstance(source, pd.DataFrame) and "samples" in source else _round_rows(source)
    by_id = rows.set_index("result_id")
    ties = pd.array([_tie(case, by_id, objective) for _, case in evaluation.iterrows()], dtype="boolean")
    out = evaluation.assign(tie=ties)
    out.attrs = {**evaluation.attrs, "hit_or_tie_rate": float(ties.fillna(False).mean()) if len(out) else math.nan,
                 "n_told": int((~ties.isna()).sum())}
    return out


def _round_rows(source: Any) -> pd.DataFrame:
    """The ok results of a store with their samples and rounds."""
    from kit.analysis.frames import results_with_samples

    frame = results_with_samples(source)
    return frame[frame["status"] == "ok"]


def _tie(case: pd.Series, by_id: pd.DataFrame, objective: str) -> bool | None:
    """Whether the case's pick is the best or cannot be told from it by their paired rounds; None where the two did
    not run in one group of interleaved rounds."""
    from kit.analysis.speedups import pair_estimate

    if case["hit"]:
        return True
    if case["chosen_result"] not in by_id.index or case["best_result"] not in by_id.index:
        return None
    chosen, best = by_id.loc[case["chosen_result"]], by_id.loc[case["best_result"]]
    estimate, method = pair_estimate(chosen, best)
    if estimate is None or not method.startswith("paired"):
        return None
    if objective == "latency":  # the pick's latency over the best's: a tie when it may be no longer
        return bool(estimate.ci_low <= 1.0)
    batches = float(chosen["batch_size"]) / float(best["batch_size"])  # throughput = batch / latency
    return bool(batches / estimate.ci_low >= 1.0)  # the pick's throughput over the best's may reach 1


def evaluation_summary(evaluation: pd.DataFrame) -> pd.DataFrame:
    """One row: variants evaluated, top-1 hit rate (and the rate of picks that are the best or that their rounds
    cannot tell from it, where `tell_apart` ran), mean and median regret, or why the evaluation was skipped, and
    the held-out groups left unscored (their training data could not be learnt from)."""
    a = evaluation.attrs
    ties = {"hit_or_tie_rate": a["hit_or_tie_rate"], "n_told": a["n_told"]} if "n_told" in a else {}
    return pd.DataFrame([{"n_variants": a.get("n_variants", 0), "top1_hit_rate": a.get("top1_hit_rate"), **ties,
                          "mean_regret": a.get("mean_regret"), "median_regret": a.get("median_regret"),
                          "skipped_reason": a.get("skipped_reason", ""), "unscored": a.get("unscored", "")}])


CHECK_KEYS = ["model", "size", "platform", "precision", "batch_size", "mode"]
CHECK_COLUMNS = [*CHECK_KEYS, "status", "source", "measured", "predicted", "low", "high", "interval_from", "ape",
                 "inside", "reason"]


def _measured_checks(measured: pd.DataFrame, target: str = "throughput") -> pd.DataFrame:
    """The rows to check, with their variant's overrides (JSON text), sequence length and intra-op thread count (NaN:
    the default)."""
    from kit.predict.features import overrides_json

    missing = sorted({*CHECK_KEYS, "status", TARGETS[target]} - set(measured))
    if missing:
        raise ConfigError(f"measurements to check need the results columns {missing}")
    params = measured["params_json"] if "params_json" in measured else pd.Series("{}", index=measured.index)
    seq = measured["seq_len"] if "seq_len" in measured else pd.Series(math.nan, index=measured.index)
    threads = measured["threads"] if "threads" in measured else pd.Series(math.nan, index=measured.index)
    return measured.assign(_overrides=params.map(overrides_json), _seq=pd.to_numeric(seq, errors="coerce"),
                           _threads=pd.to_numeric(threads, errors="coerce"))


SCALES = ("measured", "steady")
CHECKED = {"throughput": ("throughput_items_per_s", "throughput_low", "throughput_high"),  # recommend's columns
           "latency": ("latency_s", "latency_low_s", "latency_high_s")}


def check_predictions(data: Any, measured: pd.DataFrame, predictor: Predictor | None = None,
                      scale: str = "measured", target: str = "throughput") -> pd.DataFrame:
    """Throughput (or median latency, target='latency') that `recommend` gives from `data` (predicted where it holds
    no such measurement) against results measured elsewhere, e.g. a later run into another store, each at the thread
    count it ran with: per result the point, interval, absolute percentage error and whether the interval holds the
    measurement (`source` says if data measured it already), in the order and with the index of `measured`. Failed or
    skipped results keep their reason. `attrs`: scale, target, mape, median APE and interval coverage of the ok
    rows, n, and the same per source (`by_source`): a later run that measures again configurations the store holds
    ('measured') gives the repeat floor the predicted ones are held to, in the same run; reference_factor, how much
    slower than in `data` the machine reference ran beside the rows (`reference_factor`).

    scale='steady' learns and predicts on the steady scale (kit.predict.steady: beside the machine reference) and
    turns each prediction into the absolute figure at the reference speed measured beside the checked result
    (`to_absolute`), so drift between the two runs is not counted as the predictor's error. The measurement it is
    checked against is then the result's own figure on that scale (its normalised throughput over the reference
    measured beside it: the round-paired 10th percentiles, not the mean latency; or its normalised latency times the
    reference's median beside it); a result measured without the reference is not scored, with the reason."""
    from kit.recommend.core import recommend
    from kit.recommend.request import fit_predictor

    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    if target not in CHECKED:
        raise ConfigError(f"unknown target {target!r} to check; known: {', '.join(CHECKED)}")
    rows = _measured_checks(measured, target)
    frame = measured_frame(data)
    typical = _typical_references(frame, target)
    if scale == "steady":
        data = _steady_data(frame, target)
    predictor = predictor or fit_predictor(data)
    out, index = [], []
    for (model, size, overrides, seq, mode, threads), group in rows.groupby(
            ["model", "size", "_overrides", "_seq", "mode", "_threads"], dropna=False, sort=False):
        ok, seq = group[group["status"] == "ok"], None if pd.isna(seq) else int(seq)
        table = pd.DataFrame(columns=["platform", "precision", "batch_size"])
        if not ok.empty:  # the facts measured with the results: no model needs building here
            facts = measured_frame(ok).iloc[0][FACT_COLUMNS].to_dict()
            table = recommend(data, model, size=size, overrides=json.loads(overrides), seq_len=seq, mode=mode,
                              facts=facts, platforms_allowed=sorted(set(ok["platform"])), fallback=False,
                              predictor=predictor, batch_sizes=sorted(set(ok["batch_size"].astype(int))),
                              precisions=sorted(set(ok["precision"])),
                              threads=None if pd.isna(threads) else int(threads))
        index += list(group.index)
        out += [{**row[CHECK_KEYS].to_dict(), "status": row["status"], **_checked(row, table, target),
                 "reason": row.get("reason") or ""} for _, row in group.iterrows()]
    result = pd.DataFrame(out, index=index, columns=CHECK_COLUMNS).reindex(rows.index)  # in the order of `measured`
    if scale == "steady":
        result = _at_todays_reference(result, rows, typical, target)
    scored = result[result["ape"].notna()]
    result.attrs = {"scale": scale, "target": target, **_check_scores(scored),
                    "by_source": {source: _check_scores(part) for source, part in scored.groupby("source")},
                    "reference_factor": reference_factor(rows, typical, target)}
    return result


def reference_factor(rows: pd.DataFrame, typical: dict[str, float], target: str = "throughput") -> float:
    """How many times its typical time (`_typical_references` of the store) the machine reference took beside the
    `rows`, the median over the rows measured beside it on a machine and thread count the store knows: above 1 the
    machine ran slower than during the store's runs. NaN where no row can be compared."""
    from kit.predict.steady import REFERENCE_STATISTIC, reference_group, reference_seconds

    seconds = reference_seconds(rows, REFERENCE_STATISTIC[target])
    ratio = (seconds / reference_group(rows).map(typical).astype(float)).dropna()
    return float(ratio.median()) if len(ratio) else math.nan


def _check_scores(scored: pd.DataFrame) -> dict[str, float]:
    """n, MAPE, median APE and interval coverage of scored check rows."""
    return {"n": len(scored), "mape": float(scored["ape"].mean()) if len(scored) else math.nan,
            "median_ape": float(scored["ape"].median()) if len(scored) else math.nan,
            "coverage": float(scored["inside"].astype(float).mean()) if len(scored) else math.nan}


def _typical_references(frame: pd.DataFrame, target: str) -> dict[str, float]:
    """The typical reference seconds of each machine and thread count of a measured frame (`reference_group`)."""
    from kit.predict.steady import REFERENCE_STATISTIC, reference_group, typical_reference_seconds

    return typical_reference_seconds(frame, REFERENCE_STATISTIC[target]).groupby(
        reference_group(frame)).first().dropna().to_dict()


def _steady_data(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """A measured frame with the target on the steady scale; ConfigError when nothing was measured beside the
    reference."""
    from kit.predict.steady import steady_frame

    steady = steady_frame(frame, target)
    if steady.empty:
        raise ConfigError(f"the store holds no results measured in rounds beside the machine reference with a "
                          f"normalised {target}: nothing to learn on the steady scale")
    return steady


def _at_todays_reference(result: pd.DataFrame, rows: pd.DataFrame, typical: dict[str, float],
                         target: str) -> pd.DataFrame:
    """Steady predictions as absolute figures at the reference speed measured beside each checked result."""
    from kit.predict.steady import (
        REFERENCE_STATISTIC,
        at_reference,
        normalised,
        reference_group,
        reference_seconds,
        to_absolute,
    )

    today = reference_seconds(rows, REFERENCE_STATISTIC[target])
    machine_typical = reference_group(rows).map(typical).astype(float)
    out = result.copy()
    for column in ("predicted", "low", "high"):
        out[column] = to_absolute(out[column].astype(float), machine_typical, today, target)
    speed = normalised(rows, target)
    ok = out["measured"].notna()
    # the same round-paired statistics the steady scale holds: 10th percentiles (throughput), medians (latency)
    out["measured"] = at_reference(rows, today, target).where(ok)
    unscaled = ok & (out["predicted"].isna() | out["measured"].isna())
    out.loc[unscaled, "predicted"] = np.nan
    out.loc[unscaled, "reason"] = np.where(today[unscaled].isna() | speed[unscaled].isna(),
                                           "measured without the machine reference",
                                           "no steady data of this machine and thread count in the store")
    out["ape"] = (out["predicted"] / out["measured"] - 1).abs()
    inside = (out["low"] <= out["measured"]) & (out["measured"] <= out["high"])
    out["inside"] = inside.where(out["ape"].notna(), None)
    return out


def _checked(row: pd.Series, table: pd.DataFrame, target: str) -> dict[str, Any]:
    """The recommendation's throughput (or latency) for a measured row, and how far it is from the measurement."""
    match = table[(table["platform"] == row["platform"]) & (table["precision"] == row["precision"])
                  & (table["batch_size"] == row["batch_size"])]
    if row["status"] != "ok" or match.empty:
        return {"source": "", "measured": math.nan, "predicted": math.nan, "low": math.nan, "high": math.nan,
                "interval_from": "", "ape": math.nan, "inside": None}
    point, low, high = CHECKED[target]
    best, measured = match.iloc[0], float(row[TARGETS[target]])
    return {"source": best["source"], "measured": measured, "predicted": best[point], "low": best[low],
            "high": best[high], "interval_from": best["interval_from"], "ape": abs(best[point] / measured - 1),
            "inside": bool(best[low] <= measured <= best[high])}
