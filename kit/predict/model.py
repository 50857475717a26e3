"""The predictor: throughput, latency and peak memory of unmeasured configurations, with intervals and honest scores.

Each target is predicted on a log scale from an analytic baseline (kit.predict.baselines: fixed + per-op-call overhead +
roofline times, or the roofline at a constant efficiency) times a gradient-boosted correction (scikit-learn's
HistGradientBoostingRegressor, which handles missing peaks), or by either alone: the choice is made per target by
leaving whole families out inside the training data. Intervals are conformal in the CV+ style: quantiles of those
held-out residuals, so they are as wide as an unseen family makes the error (assuming the next family is like the
others; check the coverage). A prediction at t threads stays within t times the same configuration's at one thread,
and within the gain training configurations with as much work per call measured (`TargetModel.within_thread_bound`,
kit.predict.threads). Accuracy is only ever reported from leave-one-family-out validation
(`leave_one_group_out`), never on training rows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.model_selection import GroupKFold, KFold, LeaveOneGroupOut
from threadpoolctl import ThreadpoolController

from kit.errors import ConfigError
from kit.predict.baselines import BASELINE_KINDS, Baseline, OverheadBaseline, make_baseline
from kit.predict.features import CATEGORICAL, NUMERIC, TARGETS, feature_frame, numeric_column, predictor_rows
from kit.predict.threads import THREAD_BOUND, fit_gains, gain_limits

BOOSTING_ROUNDS = 300
BOOSTING_STEP = 15.0  # rounds x learning rate: fewer rounds take longer steps (300 rounds: 0.05)
MAX_LEARNING_RATE = 0.5


def boosting_params(rounds: int = BOOSTING_ROUNDS) -> dict[str, Any]:
    """HistGradientBoostingRegressor settings with this many rounds, at a learning rate of BOOSTING_STEP / rounds
    (at most MAX_LEARNING_RATE); ConfigError naming a count that is not a positive integer."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"boosting_rounds must be a positive integer, got {rounds!r}")
    return {"max_iter": rounds, "learning_rate": min(MAX_LEARNING_RATE, BOOSTING_STEP / rounds),
            "max_leaf_nodes": 15, "min_samples_leaf": 5, "l2_regularization": 1.0, "early_stopping": False,
            "random_state": 0}


GB_PARAMS = boosting_params()


def set_boosting_rounds(rounds: int) -> None:
    """Every predictor made from now on in this process boosts with this many rounds (`boosting_params`): the
    notebooks' tiny parameters take few, for quick fits of a coarser correction."""
    GB_PARAMS.update(boosting_params(rounds))


@functools.cache
def _thread_pools() -> ThreadpoolController:
    """The process's thread pools, inspected once (threadpoolctl.threadpool_limits inspects them anew on every call,
    about 6 ms, and the predictor limits them around every fit and prediction)."""
    return ThreadpoolController()


def one_openmp_thread() -> Any:
    """A context in which OpenMP (scikit-learn's gradient boosting) runs one thread."""
    return _thread_pools().limit(limits=1, user_api="openmp")


def _check_targets(targets: tuple[str, ...]) -> None:
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ConfigError(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")


def _design(features: pd.DataFrame, vocab: dict[str, list[str]]) -> pd.DataFrame:
    """Numeric features plus one-hot categoricals from a fixed vocabulary (unseen values are all zeros)."""
    numeric = features[NUMERIC].astype(float)
    hot: dict[str, pd.Series] = {}
    for column, values in vocab.items():
        text = features[column].astype(str)
        hot.update({f"{column}={value}": (text == value).astype(float) for value in values})
    return pd.concat([numeric, pd.DataFrame(hot, index=features.index)], axis=1) if hot else numeric


def _target_rows(features: pd.DataFrame, target: str) -> pd.Series:
    y = pd.to_numeric(features[TARGETS[target]], errors="coerce") if TARGETS[target] in features else None
    if y is None:
        return pd.Series(dtype=float)
    return y[(y > 0) & np.isfinite(y) & features["flops_per_item"].gt(0) & features["n_params"].gt(0)]


class SharedFit:
    """What every candidate model of one target fitted on the same rows has in common, computed once: the platforms
    with one-thread rows, the thread gains, each kind of baseline with its log prediction of those rows, and the
    boosted part's inputs (fitting them again per candidate gives the same values)."""

    def __init__(self, features: pd.DataFrame, y: pd.Series, target: str) -> None:
        self.features, self.y, self.target = features, y, target
        self.one_thread_platforms = set(features.loc[numeric_column(features, "threads") == 1, "platform"].astype(str))
        self._gains: dict | None = None
        self._baselines: dict[str, Any] = {}
        self._offsets: dict[str, Any] = {}
        self._designs: dict[tuple, tuple[pd.DataFrame, list[str]]] = {}

    def gains(self) -> dict:
        """kit.predict.threads.fit_gains of these rows."""
        if self._gains is None:
            self._gains = fit_gains(self.features, self.y, self.target)
        return self._gains

    def baseline(self, kind: str) -> Any:
        """The baseline of this kind fitted on these rows."""
        if kind not in self._baselines:
            self._baselines[kind] = make_baseline(self.target, kind).fit(self.features, self.y)
        return self._baselines[kind]

    def offset(self, kind: str) -> pd.Series | float:
        """The log prediction of these rows by the baseline of this kind (0 for 'none')."""
        if kind not in self._offsets:
            self._offsets[kind] = 0.0 if kind == "none" else self.baseline(kind).predict_log(self.features)
        return self._offsets[kind]

    def design(self, vocab: dict[str, list[str]]) -> tuple[pd.DataFrame, list[str]]:
        """The boosted part's inputs of these rows from this vocabulary, and the columns without any value (given as
        zeros, `_zero_filled`)."""
        key = tuple((column, tuple(values)) for column, values in vocab.items())
        if key not in self._designs:
            design = _design(self.features, vocab)
            empty = [c for c in design if design[c].isna().all()]
            self._designs[key] = (_zero_filled(design, empty), empty)
        return self._designs[key]


def _zero_filled(design: pd.DataFrame, empty: list[str]) -> pd.DataFrame:
    """The design with the columns that training had no value in as constant zeros (scikit-learn cannot bin a column
    without any value, and a tree never splits on a constant)."""
    design[empty] = 0.0
    return design


@dataclass
class TargetModel:
    """One target's model: an analytic baseline ('none' for plain boosting on the log target), optionally times a
    boosted log-correction, with conformal log-residual bounds."""

    target: str
    vocab: dict[str, list[str]]
    baseline_kind: str = "overhead"
    boosting: bool = True
    gb_params: dict[str, Any] = field(default_factory=lambda: dict(GB_PARAMS))
    baseline: Baseline | OverheadBaseline | None = None
    model: HistGradientBoostingRegressor | None = None
    residual_bounds: tuple[float, float] = (-np.inf, np.inf)
    selection: dict[str, float] = field(default_factory=dict)  # candidate -> mean |log residual| on held-out groups
    empty_columns: list[str] = field(default_factory=list)  # inputs with no value in training (e.g. no seq_len)
    n_train: int = 0
    n_residuals: int = 0  # held-out residuals behind the interval
    one_thread_platforms: set[str] = field(default_factory=set)  # platforms with training rows at one thread
    thread_bound: bool = True  # hold predictions at t threads within t times one thread's (`within_thread_bound`)
    measured_gains: bool = True  # and within the gains measured in training (kit.predict.threads.fit_gains)
    gains: dict = field(default_factory=dict)  # (platform, precision, threads) -> log gain curve over work per call

    @property
    def method(self) -> str:
        """A readable name of the model."""
        if self.baseline_kind == "none":
            return "boosting on the log target"
        kind = "static-bytes" if self.target == "memory" else self.baseline_kind  # memory has one baseline
        return f"{kind} baseline" + (" + boosting" if self.boosting else "")

    def _offset(self, features: pd.DataFrame) -> pd.Series | float:
        return self.baseline.predict_log(features) if self.baseline is not None else 0.0

    def design(self, features: pd.DataFrame) -> pd.DataFrame:
        """The boosted part's inputs; columns empty in training are constant zeros (`_zero_filled`)."""
        return _zero_filled(_design(features, self.vocab), self.empty_columns)

    def fit(self, features: pd.DataFrame, y: pd.Series, shared: SharedFit | None = None) -> TargetModel:
        """Fit the baseline, then the boosted correction on what the baseline leaves unexplained. `shared`: the parts
        that candidates fitted on the same rows have in common, where several are."""
        shared = shared or SharedFit(features, y, self.target)
        self.n_train = len(y)
        self.one_thread_platforms = shared.one_thread_platforms
        self.gains = shared.gains() if self.thread_bound and self.measured_gains else {}
        if self.baseline_kind != "none":
            self.baseline = shared.baseline(self.baseline_kind)
        if self.boosting:
            design, self.empty_columns = shared.design(self.vocab)
            self.model = HistGradientBoostingRegressor(**self.gb_params)
            with one_openmp_thread():  # small data: threads only add contention on shared cores
                self.model.fit(design, np.log(y) - shared.offset(self.baseline_kind))
        return self

    def predict_log(self, features: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        """(log point prediction, log baseline or NaN) per row, the point held within the thread bound
        (`within_thread_bound`)."""
        point, base = self._unbounded_log(features)
        return self.within_thread_bound(features, point), base

    def within_thread_bound(self, features: pd.DataFrame, point: pd.Series) -> pd.Series:
        """Log points at t > 1 threads held within t times the same configuration's at one thread (THREAD_BOUND),
        where training had one-thread rows of the platform, and within the gain that training configurations with as
        much work per call reached (`gains`, where fitted). The baseline fits each thread count on its own rows, so
        a family unlike the training ones (convolutions, where few training rows ran at two threads) can otherwise
        be predicted to gain more from a second thread than a second thread can give, or than its calls allow."""
        sign = THREAD_BOUND.get(self.target)
        threads = numeric_column(features, "threads")
        many = (threads > 1) & features["platform"].astype(str).isin(self.one_thread_platforms)
        if sign is None or not self.thread_bound or not many.any():
            return point
        one, _ = self._unbounded_log(features[many].assign(threads=1))
        gain = np.fmin(np.log(threads[many].to_numpy()), gain_limits(self.gains, features[many]).to_numpy())
        limit = one.to_numpy() + sign * gain
        held = point[many].to_numpy()
        out = point.copy()
        out[many] = np.minimum(held, limit) if sign > 0 else np.maximum(held, limit)
        return out

    def _unbounded_log(self, features: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        offset = self._offset(features)
        correction = 0.0
        if self.model is not None:
            with one_openmp_thread():
                correction = self.model.predict(self.design(features))
        point = pd.Series(offset + correction, index=features.index, dtype=float)
        base = offset if self.baseline is not None else pd.Series(np.nan, index=features.index)
        return point, base


def min_residuals(coverage: float) -> int:
    """The fewest held-out residuals that give a finite conformal interval at this coverage."""
    n = 1
    while _levels(n, coverage)[0] <= 0 or _levels(n, coverage)[1] > 1:
        n += 1
    return n


def _levels(n: int, coverage: float) -> tuple[float, float]:
    """Conformal quantile levels of n residuals (rounded first, so that 0.1 / 2 x 20 counts as 1, not 0.999...)."""
    alpha = 1 - coverage
    low = math.floor(round((n + 1) * alpha / 2, 9)) / n
    high = math.ceil(round((n + 1) * (1 - alpha / 2), 9)) / n
    return low, high


def _bounds(residuals: list[float], coverage: float) -> tuple[float, float]:
    """Quantiles of held-out log residuals with the conformal finite-sample correction, widened to hold 0 so that
    every interval holds its point prediction (held-out residuals of one sign would otherwise put the point outside;
    a wider interval keeps the coverage)."""
    if not residuals:
        return (-np.inf, np.inf)
    low_level, high_level = _levels(len(residuals), coverage)
    low = np.quantile(residuals, low_level) if low_level > 0 else -np.inf
    high = np.quantile(residuals, high_level) if high_level <= 1 else np.inf
    return (float(min(low, 0.0)), float(max(high, 0.0)))


@dataclass
class Predictor:
    """Throughput, latency and peak-memory predictor trained on measured rows (status ok) of a results frame.

    With baseline_kind='auto' and boosting=None, each target's model is chosen among the baselines with or without
    a boosted correction (and plain boosting) by the smallest held-out error when whole families are left out inside
    the training data; the same held-out residuals give the intervals (slightly optimistic after the choice).
    """

    targets: tuple[str, ...] = tuple(TARGETS)
    coverage: float = 0.9
    baseline_kind: str = "auto"
    boosting: bool | None = None
    group_column: str = "family"
    gb_params: dict[str, Any] = field(default_factory=lambda: dict(GB_PARAMS))
    calibration_folds: int = 5
    thread_bound: bool = True  # False: predictions at t threads may exceed t times one thread's (for comparison)
    measured_gains: bool = True  # False: only the t-times bound, not the gains measured in training (for comparison)
    models: dict[str, TargetModel] = field(default_factory=dict)
    train_groups: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.targets = tuple([self.targets] if isinstance(self.targets, str) else self.targets)
        _check_targets(self.targets)
        if not (isinstance(self.coverage, int | float) and 0 < self.coverage < 1):
            raise ConfigError(f"coverage must be in (0, 1), got {self.coverage!r}")
        self.candidates()

    def candidates(self) -> list[tuple[str, bool]]:
        """(baseline kind, boosting) pairs to choose from."""
        kinds = (*BASELINE_KINDS, "none") if self.baseline_kind == "auto" else (self.baseline_kind,)
        if any(k not in (*BASELINE_KINDS, "none") for k in kinds):
            raise ConfigError(f"unknown baseline_kind {self.baseline_kind!r}; known: auto, "
                              f"{', '.join(BASELINE_KINDS)}, none")
        boosts = (True, False) if self.boosting is None else (bool(self.boosting),)
        pairs = [(k, b) for k in kinds for b in boosts if b or k != "none"]
        if not pairs:
            raise ConfigError("baseline_kind 'none' needs boosting")
        return pairs

    def fit(self, frame: pd.DataFrame) -> Predictor:
        """Fit every target that has measured rows, choosing its model and bounds by group-wise cross-fitting."""
        _check_targets(self.targets)
        if not 0 < self.coverage < 1:
            raise ConfigError(f"coverage must be in (0, 1), got {self.coverage!r}")
        candidates = self.candidates()
        features = _ok_features(frame)
        self.train_groups = set(features[self.group_column].astype(str))
        vocab = {c: sorted(features[c].astype(str).unique()) for c in CATEGORICAL}
        for target in self.targets:
            y = _target_rows(features, target)
            if len(y) < 2:
                continue
            rows = features.loc[y.index]
            residuals = self._held_out_residuals(target, vocab, candidates, rows, y)
            scores = {c: float(np.mean(np.abs(r))) if r else np.inf for c, r in residuals.items()}
            best = min(candidates, key=lambda c: scores[c])
            model = self._target_model(target, vocab, best).fit(rows, y)
            model.residual_bounds = _bounds(residuals[best], self.coverage)
            model.n_residuals = len(residuals[best])
            model.selection = {TargetModel(target, vocab, *c).method: scores[c] for c in candidates}
            self.models[target] = model
        if not self.models:
            raise ConfigError("no measured rows with positive targets, FLOPs and parameter counts to learn from")
        return self

    def _target_model(self, target: str, vocab: dict, candidate: tuple[str, bool]) -> TargetModel:
        """An unfitted model of one target: a (baseline kind, boosting) candidate with this predictor's settings."""
        return TargetModel(target, vocab, *candidate, dict(self.gb_params), thread_bound=self.thread_bound,
                           measured_gains=self.measured_gains)

    def _held_out_residuals(self, target: str, vocab: dict, candidates: list[tuple[str, bool]], rows: pd.DataFrame,
                            y: pd.Series) -> dict[tuple[str, bool], list[float]]:
        """Log residuals of each candidate on groups (else rows) held out inside the training data."""
        groups = rows[self.group_column].astype(str).to_numpy()
        n_groups = len(set(groups))
        splitter = (GroupKFold(min(self.calibration_folds, n_groups)) if n_groups >= 2
                    else KFold(min(self.calibration_folds, len(y)), shuffle=True, random_state=0))
        residuals: dict[tuple[str, bool], list[float]] = {c: [] for c in candidates}
        for train, test in splitter.split(rows, y, groups if n_groups >= 2 else None):
            if len(train) < 2:
                continue
            shared = SharedFit(rows.iloc[train], y.iloc[train], target)
            for candidate in candidates:
                model = self._target_model(target, vocab, candidate).fit(rows.iloc[train], y.iloc[train], shared)
                point, _ = model.predict_log(rows.iloc[test])
                residuals[candidate].extend(np.log(y.iloc[test]) - point)
        return residuals

    def summary(self) -> pd.DataFrame:
        """Per fitted target: the chosen model, its training rows and the interval as factors of the point prediction
        (an infinite factor: too few held-out residuals for the nominal coverage)."""
        table = pd.DataFrame([{"target": t, "method": m.method, "n_train": m.n_train,
                               "n_groups": len(self.train_groups), "n_residuals": m.n_residuals,
                               "coverage_nominal": self.coverage, "low_factor": float(np.exp(m.residual_bounds[0])),
                               "high_factor": float(np.exp(m.residual_bounds[1]))} for t, m in self.models.items()])
        need = min_residuals(self.coverage)
        short = [t for t, m in self.models.items() if m.n_residuals < need]
        table.attrs["note"] = (f"{', '.join(short)}: fewer than {need} held-out residuals, so the "
                               f"{self.coverage:.0%} interval is unbounded" if short else "")
        return table

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per row and fitted target: `<t>_pred`, `<t>_low`, `<t>_high` (interval) and `<t>_baseline` (analytic)."""
        features = feature_frame(frame)
        out = pd.DataFrame(index=frame.index)
        for target, model in self.models.items():
            point, base = model.predict_log(features)
            low, high = model.residual_bounds
            out[f"{target}_pred"] = np.exp(point)
            out[f"{target}_low"] = np.exp(point + low)
            out[f"{target}_high"] = np.exp(point + high)
            out[f"{target}_baseline"] = np.exp(base)
        return out

    def importances(self, frame: pd.DataFrame, target: str = "throughput", n_repeats: int = 5) -> pd.DataFrame:
        """Permutation importance of each input of the boosted correction, on the given (ideally held-out) rows.

        When the chosen model has no boosted part, a boosted correction of its baseline is fitted on these rows
        to say which inputs would matter (the table's `attrs['note']` says so)."""
        if target not in self.models:
            raise ConfigError(f"target {target!r} was not fitted; fitted: {', '.join(self.models)}")
        model = self.models[target]
        features = _ok_features(frame)
        y = _target_rows(features, target)
        rows = features.loc[y.index]
        note = ""
        if model.model is None:
            note = f"chosen model is '{model.method}'; importances are of a boosted correction fitted on these rows"
            model = TargetModel(target, model.vocab, model.baseline_kind, True, dict(self.gb_params)).fit(rows, y)
        with one_openmp_thread():
            result = permutation_importance(model.model, model.design(rows), np.log(y) - model._offset(rows),
                                            n_repeats=n_repeats, random_state=0)
        names = model.design(rows.head(1)).columns
        table = pd.DataFrame({"feature": names, "importance": result.importances_mean,
                              "std": result.importances_std})
        table = table.sort_values("importance", ascending=False, ignore_index=True)
        table.attrs["note"] = note
        return table


def _ok_features(frame: pd.DataFrame) -> pd.DataFrame:
    if "status" in frame:
        frame = frame[frame["status"] == "ok"]
    frame = predictor_rows(frame)
    if frame.empty:
        raise ConfigError("no ok results to learn from")
    return feature_frame(frame)


def accuracy(measured: Any, predicted: Any) -> dict[str, float]:
    """MAPE, median APE and the share of predictions within 10% and 15% of the measurement."""
    measured, predicted = np.asarray(measured, float), np.asarray(predicted, float)
    ape = np.abs(predicted - measured) / measured
    return {"n": int(len(ape)), "mape": float(ape.mean()) if len(ape) else math.nan,
            "median_ape": float(np.median(ape)) if len(ape) else math.nan,
            "within_10": float((ape <= 0.10).mean()) if len(ape) else math.nan,
            "within_15": float((ape <= 0.15).mean()) if len(ape) else math.nan}


def interval_coverage(predictions: pd.DataFrame) -> float:
    """The share of rows whose measurement lies within their interval (low <= measured <= high); NaN without rows."""
    inside = (predictions["measured"] >= predictions["low"]) & (predictions["measured"] <= predictions["high"])
    return float(inside.mean()) if len(inside) else math.nan


@dataclass
class Validation:
    """Leave-one-group-out predictions of one target and the folds they came from."""

    target: str
    predictions: pd.DataFrame
    folds: list[dict[str, Any]]

    def scores(self) -> pd.DataFrame:
        """Accuracy of the predictor (the model chosen in each fold, with its interval coverage) and of both analytic
        baselines alone."""
        p = self.predictions
        rows = [{"method": "predictor", **accuracy(p["measured"], p["pred"]),
                 "coverage": interval_coverage(p),
                 "finite_intervals": float((np.isfinite(p["high"]) & (p["low"] > 0)).mean())}]
        # memory has one analytic baseline (static bytes + a per-group offset) whatever the kind
        names = {"roofline": "static-bytes baseline"} if self.target == "memory" else {
            kind: f"{kind} baseline" for kind in BASELINE_KINDS}
        for kind, name in names.items():
            rows.append({"method": name, **accuracy(p["measured"], p[f"baseline_{kind}"]), "coverage": math.nan,
                         "finite_intervals": math.nan})
        return pd.DataFrame(rows)

    def n_unseen_setting(self) -> int:
        """Held-out rows left unscored: their platform or precision is in no training row of their fold."""
        return sum(int(fold.get("n_unseen_setting", 0)) for fold in self.folds)

    def per_group(self) -> pd.DataFrame:
        """Accuracy of the predictor per held-out group."""
        return pd.DataFrame([{"group": g, **accuracy(d["measured"], d["pred"])}
                             for g, d in self.predictions.groupby("group")])


def _ok_positive(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """Ok single-process rows with a positive measured target."""
    ok = predictor_rows(frame[frame["status"] == "ok"] if "status" in frame else frame)
    return ok[pd.to_numeric(ok.get(TARGETS[target]), errors="coerce") > 0]


PREDICTION_COLUMNS = ["group", "measured", "pred", "low", "high", *(f"baseline_{kind}" for kind in BASELINE_KINDS)]


SETTING_COLUMNS = ("platform", "precision")  # a held-out row in a setting no training row has is not scored


def unseen_settings(training: pd.DataFrame, held: pd.DataFrame) -> pd.Series:
    """Per held-out row: True where its platform or precision appears in no training row (e.g. the only family
    measured in the browser, held out): nothing in the fold says how fast that setting is, so scoring it would
    measure the missing data, not the predictor."""
    unseen = pd.Series(False, index=held.index)
    for column in SETTING_COLUMNS:
        if column in held and column in training:
            unseen |= ~held[column].astype(str).isin(set(training[column].astype(str)))
    return unseen


def _score_split(ok: pd.DataFrame, train: np.ndarray, test: np.ndarray, groups: np.ndarray, target: str,
                 make_predictor: Callable[[], Predictor], extra_training: pd.DataFrame | None = None,
                 group_column: str = "family") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions of the test rows by a predictor (and both analytic baselines) fitted on the train rows only (plus
    the extra training rows of groups other than the held-out ones), and a description of the split; test rows in a
    setting no training row has are left out and counted (`n_unseen_setting`)."""
    training = ok.iloc[train]
    n_extra = 0
    if extra_training is not None and not extra_training.empty:
        extra = extra_training[~extra_training[group_column].astype(str).isin(set(groups[test]))]
        training, n_extra = pd.concat([training, extra], ignore_index=True), len(extra)
    unseen = unseen_settings(training, ok.iloc[test]).to_numpy()
    fold = {"held_out": ", ".join(sorted(set(groups[test]))), "train_groups": sorted(set(groups[train])),
            "n_train": len(train), "n_extra_training": n_extra, "n_test": int((~unseen).sum()),
            "n_unseen_setting": int(unseen.sum()), "method": ""}
    test = test[~unseen]
    if not len(test):
        return pd.DataFrame(columns=PREDICTION_COLUMNS), fold
    held = ok.iloc[test]
    predictor = make_predictor().fit(training)
    pred = predictor.predict(held)
    train_features, held_features = _ok_features(training), feature_frame(held)
    y = _target_rows(train_features, target)
    baselines = {f"baseline_{kind}": np.exp(make_baseline(target, kind).fit(train_features.loc[y.index], y)
                                            .predict_log(held_features)) for kind in BASELINE_KINDS}
    fold["method"] = predictor.models[target].method if target in predictor.models else ""
    predictions = pd.DataFrame({"group": groups[test], "measured": held[TARGETS[target]].astype(float),
                                "pred": pred[f"{target}_pred"], "low": pred[f"{target}_low"],
                                "high": pred[f"{target}_high"], **baselines})
    return predictions, fold


def _default_maker(target: str, group_column: str) -> Callable[[], Predictor]:
    return lambda: Predictor(targets=(target,), group_column=group_column)


def leave_one_group_out(frame: pd.DataFrame, target: str = "throughput", group_column: str = "family",
                        make_predictor: Callable[[], Predictor] | None = None,
                        extra_training: pd.DataFrame | None = None) -> Validation:
    """Score predictions of each group from a predictor trained on all other groups (sklearn LeaveOneGroupOut);
    extra_training rows (e.g. `kit.predict.architectures.architecture_rows`) join every fold's training data except
    those of the held-out group, and are never scored."""
    _check_targets((target,))
    ok = _ok_positive(frame, target)
    groups = ok[group_column].astype(str).to_numpy()
    if len(set(groups)) < 2:
        raise ConfigError(f"leave-one-group-out needs two or more values of {group_column!r}: {sorted(set(groups))}")
    make_predictor = make_predictor or _default_maker(target, group_column)
    splits = [_score_split(ok, train, test, groups, target, make_predictor, extra_training, group_column)
              for train, test in LeaveOneGroupOut().split(ok, groups=groups)]
    scored = [p for p, _ in splits if len(p)]
    return Validation(target, pd.concat(scored) if scored else pd.DataFrame(columns=PREDICTION_COLUMNS),
                      [fold for _, fold in splits])


def hold_out_groups(frame: pd.DataFrame, held_out: list[str], target: str = "throughput",
                    group_column: str = "family", make_predictor: Callable[[], Predictor] | None = None,
                    extra_training: pd.DataFrame | None = None) -> Validation:
    """Score predictions of the named groups, all held out at once, from a predictor trained on the other groups
    only: e.g. families measured after the features were designed, the honest test of a design tuned on the rest.
    extra_training rows of the other groups join the training data (as in leave_one_group_out)."""
    _check_targets((target,))
    ok = _ok_positive(frame, target)
    groups = ok[group_column].astype(str).to_numpy()
    held = [str(g) for g in held_out]
    missing = sorted(set(held) - set(groups))
    if not held or missing:
        raise ConfigError(f"groups to hold out must be non-empty values of {group_column!r} with measured rows; "
                          f"not found: {missing or held}; present: {sorted(set(groups))}")
    test = np.isin(groups, held)
    if test.all():
        raise ConfigError(f"holding out {held} leaves no {group_column!r} to train on")
    make_predictor = make_predictor or _default_maker(target, group_column)
    predictions, fold = _score_split(ok, np.flatnonzero(~test), np.flatnonzero(test), groups, target,
                                     make_predictor, extra_training, group_column)
    return Validation(target, predictions, [fold])
