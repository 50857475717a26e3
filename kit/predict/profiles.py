"""Forward profiles of stored results that lack a key of kit.zoo.PROFILE_KEYS (stored before it was counted), counted
again from the results' stored parameters: counts of the model's code and shapes, never timings, so the predictor can
learn from every result in the store. Counted in memory at each read; `benchkit upgrade` (kit.predict.upgrade) stores
them."""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd

from kit.predict.features import PROFILE_COLUMNS, extra_dict, overrides_json

log = logging.getLogger(__name__)

def variant_params(params: dict[str, Any]) -> tuple[str, str, str, int | None]:
    """(model, size, overrides JSON, seq_len): what forward_profile needs to count a stored configuration again."""
    return str(params.get("model")), str(params.get("size") or "tiny"), overrides_json(params), params.get("seq_len")


def _count(variant: tuple[str, str, str, int | None]) -> dict[str, float]:
    """The profile of one variant, {} (logged) when the model cannot be built here, e.g. a missing local folder."""
    from kit import zoo

    model, size, overrides, seq_len = variant
    try:
        loaded = zoo.load_model(model, size, overrides=json.loads(overrides))
    except Exception as exc:  # a back-fill is best effort: rows keep their stored (partial) profile
        log.warning("cannot count the forward profile of %s (%s): %s", model, size, exc)
        return {}
    return {k: v for k, v in zoo.forward_profile(loaded, seq_len).items() if k in PROFILE_COLUMNS and v is not None}


def missing_profile(frame: pd.DataFrame) -> pd.Series:
    """Per row: True when the stored forward profile of a zoo or local result lacks one of PROFILE_COLUMNS."""
    extras = frame["extra"].map(extra_dict)  # coverage rows: kit.predict.architectures counts theirs
    return extras.map(lambda e: not e.get("coverage") and not set(PROFILE_COLUMNS) <= set(e.get("forward_profile")
                                                                                        or {}))


def fill_profiles(frame: pd.DataFrame) -> pd.DataFrame:
    """The results frame with missing forward-profile keys counted now, once per variant (stored values are kept;
    extra['profile_counted_later'] names the keys added), so old and new results share their features."""
    if frame.empty or "extra" not in frame or "params_json" not in frame:
        return frame
    missing = missing_profile(frame)
    if not missing.any():
        return frame
    log.info("counting the forward profiles of %d results stored without them (`benchkit upgrade` stores them)",
             int(missing.sum()))
    variants = frame.loc[missing, "params_json"].map(lambda p: variant_params(extra_dict(p)))
    counted = {v: _count(v) for v in dict.fromkeys(variants)}
    out = frame.copy()
    for index, variant in variants.items():
        extra = extra_dict(frame.at[index, "extra"])
        stored = extra.get("forward_profile") or {}
        added = {k: v for k, v in counted[variant].items() if stored.get(k) is None}
        if added:
            extra = {**extra, "forward_profile": {**stored, **added}, "profile_counted_later": sorted(added)}
            out.at[index, "extra"] = json.dumps(extra)
    return out
