"""Charts of benchmark results: each function takes a DataFrame and returns a matplotlib Figure.

Inputs are storage.results_frame or kit.records.records_frame frames (only status == 'ok' rows are drawn, the latest
result per configuration); an empty selection gives a Figure saying "no data" instead of raising. Figures are built
without pyplot, so they work under the Agg backend, in notebooks and in worker threads alike.

`bars` holds per-platform bars and batch scaling; `comparison` speed-ups and history (kit.analysis); `training` training
against inference; `generation` text generation; `coverage` the architecture matrix; `distributed` scaling and the
memory estimator; `prediction` prediction and recommendation; `display` the PNG display under IPython, registered
when this package is imported; `figures` the building blocks they share.
"""

from kit.plots.bars import (
    batch_scaling,
    latency_by_platform,
    median_throughput,
    memory_by_platform,
    metric_chart,
    throughput_by_platform,
)
from kit.plots.comparison import HISTORY_UNITS, history_chart, machine_speedup_chart, speedup_chart, speedup_heatmap
from kit.plots.coverage import coverage_heatmap, speedup_strip
from kit.plots.display import show_figures_as_png
from kit.plots.distributed import MEMORY_TERMS, memory_validation_chart, scaling_chart
from kit.plots.figures import HUE_TITLE, LABEL_FIELDS, MIB
from kit.plots.generation import generation_chart
from kit.plots.prediction import (
    RECOMMEND_AXES,
    TARGET_AXES,
    error_by_family,
    feature_importances,
    predicted_vs_measured,
    recommendation_chart,
    roofline_chart,
)
from kit.plots.training import MEMORY_PART_LABELS, training_memory_chart, training_vs_inference_chart

show_figures_as_png()  # on import, as the single module did: notebooks then show Figures as PNG

__all__ = [
    "HISTORY_UNITS", "HUE_TITLE", "LABEL_FIELDS", "MEMORY_PART_LABELS", "MEMORY_TERMS", "MIB", "RECOMMEND_AXES",
    "TARGET_AXES", "batch_scaling", "coverage_heatmap", "error_by_family", "feature_importances", "generation_chart",
    "history_chart", "machine_speedup_chart",
    "latency_by_platform", "median_throughput", "memory_by_platform", "memory_validation_chart", "metric_chart",
    "predicted_vs_measured", "recommendation_chart", "roofline_chart", "scaling_chart", "show_figures_as_png",
    "speedup_chart", "speedup_heatmap", "speedup_strip", "throughput_by_platform", "training_memory_chart",
    "training_vs_inference_chart",
]
