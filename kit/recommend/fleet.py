"""Across a fleet: the cheapest machine x platform x precision x batch size for a model, from what each machine
measured, under a p99 latency bound and a memory budget, with an hourly price per machine."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from kit import storage
from kit.analysis.machines import machines_table
from kit.errors import ConfigError
from kit.predict.features import predictor_rows

FLEET_COLUMNS = ["rank", "machine", "hardware_id", "platform", "precision", "batch_size", "throughput_items_per_s",
                 "latency_p99_ms", "peak_memory_gib", "hourly_price", "cost_per_million", "feasible", "reason"]


def check_price_values(prices: Any) -> None:
    """ConfigError unless prices map machine names to non-negative hourly prices (before any store is read)."""
    if not isinstance(prices, dict) or not prices:
        raise ConfigError(f"machine_prices must map machines to hourly prices, got {prices!r}")
    for name, price in prices.items():
        if not (isinstance(price, int | float) and not isinstance(price, bool) and price >= 0 and math.isfinite(price)):
            raise ConfigError(f"hourly price of machine {name!r} must be a non-negative number, got {price!r}")


def check_prices(prices: Any, machines: pd.DataFrame) -> dict[str, float]:
    """Hourly prices keyed by hardware id (a machine's label also names it); ConfigError naming a bad price or an
    unknown machine."""
    check_price_values(prices)
    ids = dict(zip(machines["machine"], machines["hardware_id"], strict=True))
    known = set(machines["hardware_id"])
    out = {}
    for name, price in prices.items():
        hardware_id = name if name in known else ids.get(name)
        if hardware_id is None:
            raise ConfigError(f"unknown machine {name!r} in machine_prices; known: {', '.join(sorted(known))}")
        out[hardware_id] = float(price)
    return out


def fleet_ranking(con: storage.Connection, model: str, machine_prices: dict[str, float], *, size: str | None = None,
                  mode: str = "inference", latency_bound_ms: float | None = None,
                  memory_budget_gb: float | None = None) -> pd.DataFrame:
    """Every machine x platform x precision x batch size that measured the model (its latest ok result), ranked by
    cost per million items (hourly price / items per hour); rows over the p99 bound or the memory budget, or on a
    machine without a price, are kept unranked with the reason."""
    machines = machines_table(con)
    prices = check_prices(machine_prices, machines)
    for name, value in (("latency_bound_ms", latency_bound_ms), ("memory_budget_gb", memory_budget_gb)):
        if value is not None and not (isinstance(value, int | float) and value > 0):
            raise ConfigError(f"{name} must be positive or None, got {value!r}")
    frame = predictor_rows(storage.results_frame(con, status="ok", model=model, mode=mode))
    if size is not None:
        frame = frame[frame["size"] == size]
    frame = frame[frame["hardware_id"].isin(list(machines["hardware_id"]))]
    keys = ["hardware_id", "platform", "precision", "batch_size"]
    latest = frame.sort_values("created_at").drop_duplicates(keys, keep="last")
    labels = dict(zip(machines["hardware_id"], machines["machine"], strict=True))
    table = latest.assign(machine=latest["hardware_id"].map(labels), latency_p99_ms=latest["latency_p99_s"] * 1e3,
                          peak_memory_gib=latest["peak_memory_bytes"] / 2**30,
                          hourly_price=latest["hardware_id"].map(prices))
    table["cost_per_million"] = table["hourly_price"] / (table["throughput_items_per_s"] * 3600) * 1e6
    table["reason"] = [_reason(row, latency_bound_ms, memory_budget_gb) for _, row in table.iterrows()]
    table["feasible"] = table["reason"] == ""
    table = table.sort_values(["feasible", "cost_per_million"], ascending=[False, True], ignore_index=True)
    table["rank"] = pd.Series(range(1, len(table) + 1), dtype="Int64").where(table["feasible"])
    return table[FLEET_COLUMNS]


def _reason(row: pd.Series, latency_bound_ms: float | None, memory_budget_gb: float | None) -> str:
    if pd.isna(row["hourly_price"]):
        return "no hourly price for this machine"
    if latency_bound_ms is not None and not row["latency_p99_ms"] <= latency_bound_ms:
        return f"p99 latency {row['latency_p99_ms']:.3g} ms above the bound of {latency_bound_ms:g} ms"
    if memory_budget_gb is not None and pd.isna(row["peak_memory_gib"]):
        return "peak memory not measured: the memory budget cannot be checked"
    if memory_budget_gb is not None and not row["peak_memory_gib"] <= memory_budget_gb:
        return f"peak memory {row['peak_memory_gib']:.3g} GiB above the budget of {memory_budget_gb:g} GiB"
    return ""
