"""Recommend a platform, precision and batch size for a model under constraints, from measurements or predictions.

`core` ranks the candidates (measured where measured, predicted with intervals elsewhere, constraints checked on
upper bounds, fallbacks named); `repeats` gives a measured figure the spread between the store's runs as its
interval; `exclusions` says why a candidate or a platform is ruled out (constraints, failed measurements, output
deviation); `evaluation` scores recommendations made without a family's own measurements; `request` validates a
request and holds the `benchkit recommend` command; `summary` the notes, budget search and headline values; `fleet`
ranks the machines of a fleet by cost under a p99 bound; `generation` ranks measured text-generation results by TTFT,
TPOT or tokens/s.
"""

from kit.recommend.core import (
    FACT_COLUMNS,
    OBJECTIVES,
    RANK_BY,
    RESULT_COLUMNS,
    best_under_budget,
    candidate_grid,
    measured_frame,
    rank,
    recommend,
    zoo_facts,
)
from kit.recommend.evaluation import (
    check_predictions,
    evaluate_rankings,
    evaluate_recommendations,
    evaluation_summary,
    ranking_scores,
    repeat_picks,
    tell_apart,
)
from kit.recommend.fleet import FLEET_COLUMNS, check_prices, fleet_ranking
from kit.recommend.generation import GENERATION_OBJECTIVES, GENERATION_RESULT_COLUMNS, recommend_generation
from kit.recommend.request import Request, add_recommend_arguments, cmd_recommend, fit_predictor, parse_prices
from kit.recommend.summary import (
    budget_search,
    data_overview,
    excluded_table,
    headline,
    measured_platforms,
    notes_table,
    predictor_summary,
)

__all__ = ["FACT_COLUMNS", "FLEET_COLUMNS", "GENERATION_OBJECTIVES", "GENERATION_RESULT_COLUMNS", "OBJECTIVES",
           "RANK_BY", "RESULT_COLUMNS", "Request", "add_recommend_arguments", "best_under_budget", "budget_search",
           "candidate_grid", "check_predictions", "check_prices", "cmd_recommend", "data_overview",
           "evaluate_rankings", "evaluate_recommendations", "evaluation_summary", "excluded_table", "fit_predictor",
           "fleet_ranking", "headline", "measured_frame", "measured_platforms", "notes_table", "parse_prices",
           "predictor_summary", "rank", "ranking_scores", "recommend", "recommend_generation", "repeat_picks",
           "tell_apart", "zoo_facts"]
