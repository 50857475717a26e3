"""What each notebook answers, in one call per notebook: the values its tests read (recorded by name) and the few
formatted figures its published page leads with. A notebook's last cell is
`kit.notebook.publish(kit.headlines.<notebook>(...))`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from kit.notebook import Headline, gib, ms, pct, rate, times
from kit.records import Record


def _count(records: list[Record], status: str) -> int:
    return sum(r.status == status for r in records)


def _where(row: Any) -> str:
    return f"{row.model} {row.platform}/{row.precision}, batch {row.batch_size}"


def benchmark(run_id: str, records: list[Record], stability: pd.DataFrame) -> Headline:
    """Notebook 01: configurations by status, the highest throughput, the lowest median latency, the machine's drift."""
    ok = [r for r in records if r.status == "ok"]
    best = max(ok, key=lambda r: r.throughput_items_per_s, default=None)
    fastest = min(ok, key=lambda r: r.latency_p50_s, default=None)
    drift = stability["drift_index"].iloc[0] if len(stability) else None
    values = {"run_id": run_id, "n_ok": len(ok), "n_skipped": _count(records, "skipped"),
              "n_failed": _count(records, "failed"),
              "percentiles_ordered": all(r.latency_p50_s <= r.latency_p99_s for r in ok),
              "best_throughput_items_per_s": best and best.throughput_items_per_s, "drift_index": drift}
    figures = {
        "configurations": f"{len(ok)} measured, {values['n_skipped']} skipped, {values['n_failed']} failed",
        "highest throughput": best and f"{rate(best.throughput_items_per_s, 'items/s')} ({_where(best)})",
        "lowest median latency": fastest and f"{ms(fastest.latency_p50_s)} ({_where(fastest)})",
        "machine drift during the run": pct(drift),
    }
    return Headline(values, figures)


def comparison(plan: Any, speedups: pd.DataFrame, ranking: pd.DataFrame, exports: dict[str, Any],
               regressions: pd.DataFrame, history: pd.DataFrame, machines: pd.DataFrame,
               across: pd.DataFrame) -> Headline:
    """Notebook 02: the largest speed-up over the baseline, how many are significant, regressions against the
    previous run."""
    from kit.analysis import compared_count

    ci_rows = speedups[speedups["speedup_ci_low"].notna()]
    n_regressions = int((regressions["status"] == "regression").sum())
    values = {"run_id": plan.run_id, "baseline": plan.baseline, "n_speedups": int(speedups["speedup"].notna().sum()),
              "cis_ordered": bool(((ci_rows["speedup_ci_low"] <= ci_rows["speedup"])
                                   & (ci_rows["speedup"] <= ci_rows["speedup_ci_high"])).all()),
              "n_ranked": len(ranking), "exports_exist": all(Path(p).is_file() for p in exports.values()),
              "n_compared": compared_count(regressions), "n_regressions": n_regressions,
              "n_history_runs": len(history), "n_machines": len(machines), "n_machine_speedups": len(across)}
    top = speedups.dropna(subset=["speedup"]).sort_values("speedup", ascending=False)
    row = next(top.itertuples(), None)
    figures = {
        "largest speed-up over the baseline": row and f"{times(row.speedup)} ({_where(row)})",
        "significant speed-ups": f"{int(speedups['significant'].fillna(False).astype(bool).sum())} of {len(top)}",
        "regressions against the previous run": (f"{n_regressions} of {values['n_compared']} compared"
                                                 if plan.baseline else "no earlier run to compare with"),
    }
    return Headline(values, figures)


def training(run_id: str, records: list[Record], tvi: pd.DataFrame, phases: pd.DataFrame,
             convergence: pd.DataFrame) -> Headline:
    """Notebook 03: training over inference throughput and memory, and whether the loss fell."""
    values = {"run_id": run_id, "n_ok": _count(records, "ok"), "n_pairs": int(tvi["throughput_ratio"].notna().sum()),
              "throughput_ratios": tvi["throughput_ratio"].dropna().tolist(),
              "throughput_ratios_p50": tvi["throughput_ratio_p50"].dropna().tolist(),
              "memory_ratios": tvi["memory_ratio"].dropna().tolist(),
              "phase_coverage": phases["phase_coverage"].tolist(), "first_losses": convergence["first_loss"].tolist(),
              "last_losses": convergence["last_loss"].tolist(),
              "loss_decreased": convergence["loss_decreased"].tolist()}
    figures = {
        "training over inference throughput (median)": times(tvi["throughput_ratio"].median()),
        "training over inference peak memory (median)": times(tvi["memory_ratio"].median()),
        "configurations whose loss fell": f"{int(convergence['loss_decreased'].sum())} of {len(convergence)}",
    }
    return Headline(values, figures)


def prediction(h: dict[str, Any], peaks: pd.DataFrame, budget: pd.DataFrame, repeats: pd.DataFrame,
               steady: pd.DataFrame, with_architectures: pd.DataFrame | None = None,
               steady_floor: pd.DataFrame | None = None, steady_latency: pd.DataFrame | None = None,
               held_out_scales: pd.DataFrame | None = None) -> Headline:
    """Notebook 04 from kit.predict.headline's values: held-out error (measured and steady scale, and with the
    coverage architectures learned from), share within 10 %, interval coverage, the repeat floor (and per setting on
    the steady scale), median latency on both scales, the families held out together on both scales
    (kit.predict.held_out_scales, with their interval coverage on the steady scale), the families."""
    steady_mape = float(steady.loc["steady", "mape"]) if "steady" in steady.index else None
    latency = steady_latency if steady_latency is not None else pd.DataFrame()
    latency_mape = {scale: float(latency.loc[scale, "mape"]) if scale in latency.index else None
                    for scale in ("measured", "steady")}
    together = {scale: _held_out_value(held_out_scales, scale) for scale in ("measured", "steady")}
    together_coverage = _held_out_value(held_out_scales, "steady", "coverage")
    architectures = with_architectures if with_architectures is not None else pd.DataFrame()
    learned = architectures.iloc[-1] if len(architectures) > 1 else None
    keys = ("n_train", "n_families", "throughput_mape", "throughput_within_10", "throughput_coverage",
            "mape_goal_met", "n_unmeasured_predicted", "intervals_ordered", "held_out_throughput_mape",
            "repeat_mape")
    values = {"headline": h, "n_peaks": len(peaks), **{k: h.get(k) for k in keys},
              "error_budget": budget.reset_index().to_dict("records"),
              "repeat_table": repeats.reset_index().to_dict("records"),
              "steady_scores": steady.reset_index().to_dict("records"), "steady_throughput_mape": steady_mape,
              "architecture_scores": architectures.reset_index().to_dict("records"),
              "with_architectures_mape": None if learned is None else float(learned["mape"]),
              "steady_floor": [] if steady_floor is None else steady_floor.reset_index().to_dict("records"),
              "steady_latency_scores": latency.reset_index().to_dict("records"),
              "steady_latency_mape": latency_mape["steady"],
              "held_out_scales": [] if held_out_scales is None else held_out_scales.reset_index().to_dict("records"),
              "held_out_steady_throughput_mape": together["steady"],
              "held_out_steady_throughput_coverage": together_coverage}
    figures = {
        "throughput error on families held out (MAPE)": pct(h.get("throughput_mape")),
        "the same on the steady scale (beside the machine reference)": pct(steady_mape),
        "predictions within 10 %": pct(h.get("throughput_within_10")),
        f"{round(100 * h.get('coverage_nominal', 0.9))} % intervals holding the measurement":
            pct(h.get("throughput_coverage")),
        "the same, learning from the coverage architectures too": None if learned is None else (
            f"{pct(learned['mape'])} ({int(learned['families_trained'])} families)"),
        "a second measurement's own error (repeat floor)": pct(h.get("repeat_mape")),
        "median latency error on families held out, steady scale (measured scale)": None if latency.empty else (
            f"{pct(latency_mape['steady'])} ({pct(latency_mape['measured'])})"),
        "throughput error on the families held out together, steady scale (measured scale)":
            None if together["steady"] is None else f"{pct(together['steady'])} ({pct(together['measured'])})",
        f"{round(100 * h.get('coverage_nominal', 0.9))} % intervals holding the measurement on those families, "
        "steady scale": pct(together_coverage),
        "families in the data": str(h.get("n_families")),
    }
    return Headline(values, figures)


def _held_out_value(table: pd.DataFrame | None, scale: str, column: str = "mape") -> float | None:
    """A throughput score (MAPE, coverage) of all groups held out together on one scale of
    kit.predict.held_out_scales' table; None where it has none."""
    key = (scale, "throughput", "all")
    value = None if table is None or key not in table.index else table.loc[key, column]
    return None if pd.isna(value) else float(value)


def recommendation(h: dict[str, Any], fleet: pd.DataFrame | None, latency_bound_ms: float | None,
                   rankings: pd.DataFrame | None = None) -> Headline:
    """Notebook 05 from kit.recommend.headline's values: the pick, its memory, the held-out hit rate and regret (and
    on the steady scale ranked by the interval, from kit.recommend.ranking_scores), and the fleet ranking's
    machines."""
    rankings = rankings if rankings is not None else pd.DataFrame()
    steady = rankings.loc[("steady", "bound")] if ("steady", "bound") in rankings.index else None
    keys = ("pick_platform", "candidate_platforms", "pick_within_budget", "n_ranked", "fell_back", "top1_hit_rate",
            "mean_regret", "evaluation_skipped_reason")
    ranked = fleet[fleet["feasible"]] if fleet is not None else None
    values = {"headline": h, **{k: h[k] for k in keys},
              "n_fleet_ranked": None if ranked is None else len(ranked),
              "fleet_machines": None if ranked is None else sorted(ranked["hardware_id"].unique()),
              "fleet_p99_within_bound": None if ranked is None or latency_bound_ms is None else
              bool((ranked["latency_p99_ms"] <= latency_bound_ms).all()),
              "ranking_scores": rankings.reset_index().to_dict("records")}
    figures = {
        "pick": h["pick_platform"] and (f"{h['pick_platform']}/{h['pick_precision']}, batch {h['pick_batch_size']} "
                                        f"({h['pick_source']})"),
        "its memory, upper bound": gib(h.get("pick_memory_high_bytes")),
        "top-1 hit rate on families held out": pct(h.get("top1_hit_rate")),
        "mean regret": pct(h.get("mean_regret")),
        "the same on the steady scale, ranked by the interval": None if steady is None or not steady["n_variants"]
        else f"{pct(steady['top1_hit_rate'])} hits, {pct(steady['mean_regret'])} regret",
        "hits or picks their rounds cannot tell from the best (steady, interval)": None if steady is None
        or pd.isna(steady.get("hit_or_tie_rate")) else pct(steady["hit_or_tie_rate"]),
    }
    return Headline(values, figures)


def distributed(summary: dict[str, Any], errors: dict[str, Any], advice: Any) -> Headline:
    """Notebook 06: world sizes measured, scaling efficiency, the memory estimator's error, the advised strategy."""
    values = {key: summary[key] for key in ("n_ok_worlds", "ok_world_sizes", "not_ok", "attempts",
                                             "throughput_items_per_s", "scaling_efficiency")}
    values.update(memory_n_validated=errors["n"], memory_signed_error_pct=errors["signed_error_pct"],
                  memory_single_max_abs_error_pct=errors["single_max_abs_error_pct"],
                  memory_single_within_target=errors["single_within_target"], advisor_fits=advice.fits,
                  advisor_strategy=advice.settings.get("strategy"))
    largest = errors["single_max_abs_error_pct"]
    figures = {
        "world sizes measured": ", ".join(map(str, summary["ok_world_sizes"])) or "none",
        "scaling efficiency": ", ".join(f"{pct(e)} at {w} ranks" for w, e in summary["scaling_efficiency"].items())
        or None,
        "memory estimator, largest error on one process": None if largest is None else f"{largest:.1f} %",
        "advised strategy": f"{advice.settings.get('strategy')} ({'fits' if advice.fits else 'does not fit'})",
    }
    return Headline(values, figures)


def generation(run_id: str, records: list[Record], table: pd.DataFrame, kv: pd.DataFrame, speedups: pd.DataFrame,
               best: pd.DataFrame) -> Headline:
    """Notebook 07: the fastest first token, the highest decode rate, the KV cache against its estimate."""
    values = {"run_id": run_id, "n_ok": _count(records, "ok"), "n_generation_rows": len(table),
              "ttft_ms": table["ttft_ms"].tolist(), "prefill_ms": table["prefill_ms"].tolist(),
              "tpot_ms": table["tpot_ms"].tolist(), "kv_estimate_error_pct": kv["estimate_error_pct"].tolist(),
              "n_speedups": len(speedups), "n_best": len(best)}
    fast = next(table.sort_values("ttft_ms").itertuples(), None)
    rapid = next(table.sort_values("decode_tokens_per_s", ascending=False).itertuples(), None)
    figures = {
        "fastest first token": fast and (f"{fast.ttft_ms:.3g} ms ({fast.model} {fast.platform}/{fast.precision}, "
                                         f"prompt {fast.prompt_len}, batch {fast.batch_size})"),
        "highest decode rate": rapid and f"{rate(rapid.decode_tokens_per_s, 'tokens/s')} ({_where(rapid)})",
        "KV cache against its estimate, largest error": (f"{kv['estimate_error_pct'].abs().max():.1f} %" if len(kv)
                                                          else None),
    }
    return Headline(values, figures)


def coverage(run_id: str, frame: pd.DataFrame, table: pd.DataFrame, reasons: pd.DataFrame,
             speed: pd.DataFrame) -> Headline:
    """Notebook 08: architectures attempted, the share that ran per platform, the commonest failure, the speed-ups."""
    from kit.coverage.tables import headline_figures

    failed = frame.loc[frame["status"] == "failed", "stage"]
    values = {"run_id": run_id, "n_architectures": int(frame["model_type"].nunique()), "n_rows": len(frame),
              "statuses": frame["status"].value_counts().to_dict(),
              "ok_share": table.drop(columns="n").loc["all"].to_dict() if len(table) else {},
              "n_failure_groups": len(reasons),
              "failed_have_stage": bool(failed.isin(["build", "input", "forward", "conversion", "export",
                                                     "runtime"]).all()),
              "speedups": speed["speedup_vs_cpu"].tolist()}
    return Headline(values, headline_figures(frame, speed))
