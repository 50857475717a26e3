"""Noisy results measured again: a result whose confidence interval missed its target (`noisy`) may have been
disturbed by other work on the cores, and one whose timed loop lost CPU time to other guests of the machine's host
(`disturbed`: its recorded steal share) is suspect even when it converged. Such a configuration is measured once more
under a run id of its own, and the predictor learns from the good measurement. The first one stays in the store
(nothing measured is lost)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from kit.errors import ConfigError
from kit.predict.features import extra_dict, predictor_rows

REMEASURE_SUFFIX = "-re-"
# a timed loop during which the host gave more than this share of all CPUs' time to other guests is disturbed
DISTURBED_STEAL_SHARE = 0.05
SUMMARY_COLUMNS = ("n_ok", "n_noisy", "n_disturbed", "n_superseded", "n_remeasurements", "n_left_to_remeasure")
JOB_FIELDS = ("model", "size", "mode", "platform", "precision", "batch_size", "seq_len", "overrides", "time_budget_s",
              "target_rel_ci", "min_samples", "max_samples", "warmup_iters", "threads", "training")


def configuration_key(frame: pd.DataFrame) -> pd.Series:
    """One value per measured configuration on one machine: config key (model, size, mode, platform, precision,
    batch, sequence, overrides, training options), thread count and hardware; the same across runs."""
    threads = frame["threads"].fillna(0).astype(int).astype(str) if "threads" in frame else "0"
    hardware = frame["hardware_id"].astype(str) if "hardware_id" in frame else ""
    return frame["config_key"].astype(str) + "|threads" + threads + "|" + hardware


def disturbed(frame: pd.DataFrame) -> pd.Series:
    """Per row: True when the host took more than DISTURBED_STEAL_SHARE of the CPUs' time during its timed loop
    (`extra.host_steal_share`; False where it was not recorded)."""
    if "extra" not in frame:
        return pd.Series(False, index=frame.index)
    share = frame["extra"].map(lambda e: extra_dict(e).get("host_steal_share"))
    return pd.to_numeric(share, errors="coerce").fillna(0.0) > DISTURBED_STEAL_SHARE


def _suspect(frame: pd.DataFrame) -> pd.Series:
    """Per row: noisy or disturbed."""
    return frame["noisy"].fillna(False).astype(bool) | disturbed(frame)


def prefer_converged(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without the measurements that a good one (converged, not disturbed) of the same configuration
    supersedes: a noisy or disturbed row gives way to any good one, and every other row to a good re-measurement
    (made because the first was suspect, or measured while the machine was disturbed). Other rows, repeated
    measurements included, are all kept."""
    if frame.empty or "noisy" not in frame or "config_key" not in frame:
        return frame
    key = configuration_key(frame)
    suspect = _suspect(frame)
    again = _is_remeasurement(frame) if "run_id" in frame else pd.Series(False, index=frame.index)
    good, good_again = set(key[~suspect]), set(key[~suspect & again])
    return frame[~((suspect & key.isin(good)) | (~again & key.isin(good_again)))]


def best_measurements(frame: pd.DataFrame) -> pd.DataFrame:
    """One measurement per configuration (configuration key, threads, machine): its fastest good one (converged,
    undisturbed), else its fastest. Other work on the machine only ever slows a measurement, so the fastest is the
    closest to the machine's own speed (timeit's rule of taking the minimum); this is what the predictor learns from."""
    if frame.empty or "config_key" not in frame or "throughput_items_per_s" not in frame:
        return prefer_converged(frame)
    suspect = _suspect(frame) if "noisy" in frame else pd.Series(False, index=frame.index)
    order = pd.DataFrame({"key": configuration_key(frame), "suspect": suspect,
                          "slowness": -pd.to_numeric(frame["throughput_items_per_s"], errors="coerce").fillna(-1.0)})
    keep = order.sort_values(["suspect", "slowness"], kind="stable").drop_duplicates("key").index
    return frame[frame.index.isin(keep)]


def _is_remeasurement(frame: pd.DataFrame) -> pd.Series:
    """Per row: True for a result of a re-measure run (`<run>-re-<hash>`)."""
    return frame["run_id"].astype(str).str.contains(REMEASURE_SUFFIX)


def _to_measure_again(frame: pd.DataFrame, run_prefix: str | None, converged_too: bool = False) -> pd.DataFrame:
    """The noisy or disturbed rows (with converged_too, all rows) of runs starting with run_prefix whose
    configuration has no re-measurement yet and, unless converged_too, no good measurement either; one per
    configuration (a re-measurement's own configuration is always measured again)."""
    measured_again = set(configuration_key(frame[_is_remeasurement(frame)]))
    if run_prefix is not None:
        frame = frame[frame["run_id"].astype(str).str.startswith(run_prefix)]
    if converged_too:
        rows = frame[~_is_remeasurement(frame)]
    else:
        kept = prefer_converged(frame)
        rows = kept[_suspect(kept)]
    rows = rows[~configuration_key(rows).isin(measured_again)]
    return rows[~configuration_key(rows).duplicated()]


def noisy_results(con: Any, run_prefix: str | None = None, converged_too: bool = False) -> pd.DataFrame:
    """Ok single-process results flagged noisy or disturbed, of runs whose id starts with run_prefix (all runs when
    None), whose configuration has neither a good measurement nor a re-measurement yet; one per configuration, never a
    re-measurement itself (so a second `remeasure_noisy` measures nothing twice). With converged_too, every result
    of those runs not measured again yet, noisy or not: for runs made while the machine was disturbed (e.g. a
    virtual machine whose host took CPU time: `top`'s `st`) before the steal share was recorded with every result,
    whose converged results are suspect too; it needs a run_prefix, so that a whole store is never measured again
    by mistake."""
    from kit import storage

    if converged_too and not run_prefix:
        raise ConfigError("measuring converged results again needs a run prefix (the runs made while the machine "
                          f"was disturbed), got {run_prefix!r}")
    frame = predictor_rows(storage.results_frame(con, status="ok"))
    return frame if frame.empty else _to_measure_again(frame, run_prefix, converged_too)


def noisy_summary(con: Any) -> pd.DataFrame:
    """One row on the store's ok single-process results: how many, how many noisy, how many disturbed, how many
    give way to a better measurement of their configuration in the training frame (`best_measurements`), how many
    re-measurements exist, and how many noisy or disturbed results are left that `benchkit remeasure-noisy` would
    measure again."""
    from kit import storage

    frame = predictor_rows(storage.results_frame(con, status="ok"))
    if frame.empty:
        return pd.DataFrame([dict.fromkeys(SUMMARY_COLUMNS, 0)])
    return pd.DataFrame([{"n_ok": len(frame), "n_noisy": int(frame["noisy"].fillna(False).astype(bool).sum()),
                          "n_disturbed": int(disturbed(frame).sum()),
                          "n_superseded": len(frame) - len(best_measurements(frame)),
                          "n_remeasurements": int(_is_remeasurement(frame).sum()),
                          "n_left_to_remeasure": len(_to_measure_again(frame, None))}])


def remeasure_spec(params_json: Any, run_id: str) -> Any:
    """The SweepSpec of one stored configuration (its params_json), under a re-measure run id of its own."""
    from kit.config import SweepSpec

    params = extra_dict(params_json)
    missing = [f for f in ("model", "platform", "precision", "batch_size", "mode") if f not in params]
    if missing:
        raise ConfigError(f"stored parameters of {run_id!r} lack {missing}; cannot measure them again")
    job = {k: params[k] for k in JOB_FIELDS if k in params}
    key = hashlib.sha1(json.dumps(job, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return SweepSpec(models=[job.pop("model")], platforms=[job.pop("platform")], precisions=[job.pop("precision")],
                     batch_sizes=[job.pop("batch_size")], modes=[job.pop("mode")], **job,
                     run_id=f"{run_id}{REMEASURE_SUFFIX}{key}")


def check_sample(sample: int | None) -> None:
    """Raise ConfigError unless sample is None or a positive whole number."""
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int) or sample < 1):
        raise ConfigError(f"sample must be a positive number of configurations, got {sample!r}")


def sample_configurations(rows: pd.DataFrame, sample: int | None, seed: int = 0) -> pd.DataFrame:
    """A seeded random sample of `sample` rows (all rows when None or when there are fewer): a repeatability check
    needs configurations measured twice from every setting, not a whole store measured again."""
    if sample is None:
        return rows
    check_sample(sample)
    return rows.sample(n=min(sample, len(rows)), random_state=seed).sort_index()


def remeasure_noisy(con: Any, run_prefix: str | None = None, *, converged_too: bool = False,
                    sample: int | None = None, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Measure every noisy_results configuration once more, or a seeded sample of `sample` of them (an interrupted
    call resumes its configurations, since a re-measure run id is its configuration's; with a sample, a second call
    measures `sample` others); one row each: the original and new run, both throughputs and whether the new one
    converged."""
    from kit.runners.sweep import run_sweep

    check_sample(sample)  # before the store is read
    noisy = sample_configurations(noisy_results(con, run_prefix, converged_too), sample, seed)
    specs = [remeasure_spec(p, r) for p, r in zip(noisy["params_json"], noisy["run_id"], strict=True)]
    rows = []
    for spec, (_, old) in zip(specs, noisy.iterrows(), strict=True):
        new = run_sweep(spec, con, progress=progress)[0]
        rows.append({"config_key": old["config_key"], "run_id": old["run_id"], "remeasure_run_id": spec.run_id,
                     "status": new.status, "old_throughput": old["throughput_items_per_s"],
                     "new_throughput": new.throughput_items_per_s, "converged": new.status == "ok" and not new.noisy})
    return pd.DataFrame(rows, columns=["config_key", "run_id", "remeasure_run_id", "status", "old_throughput",
                                       "new_throughput", "converged"])
