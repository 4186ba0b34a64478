"""Evolutionary searchers over subnet configs (deap); they see subnets only as ``SubnetConfig``.

from search_space import load_space
from evolve import EvolveConfig, run_search
space = load_space("nasvit")
config = EvolveConfig(population=50, generations=20, budgets=["macs<=300M", "macs<=500M"])
result = run_search(space, evaluator, config, out_dir="runs/search")   # evaluator: cfgs -> [{"top1": ...}]
result.best_for("macs<=300M").subnet
"""

from evolve.budget import BUDGET_METRICS, Budget, describe_budget, parse_budget
from evolve.candidate import Candidate
from evolve.config import ALGORITHMS, EvolveConfig
from evolve.errors import BudgetError, SearchError
from evolve.evaluator import CandidateScorer, Evaluator, LatencyFn
from evolve.log import CANDIDATES_FILE, GENERATIONS_FILE, SETTINGS_FILE, SearchLog, load_candidates
from evolve.pareto import candidate_front, hypervolume, pareto_front
from evolve.plot import plot_pareto
from evolve.results import BEST_FILE, PARETO_FILE, PLOT_FILE, GenerationSummary, SearchResult, write_results
from evolve.search import generation_rng, run_search, unattainable_cost_budgets

__all__ = [
    "ALGORITHMS",
    "BEST_FILE",
    "BUDGET_METRICS",
    "CANDIDATES_FILE",
    "GENERATIONS_FILE",
    "PARETO_FILE",
    "PLOT_FILE",
    "SETTINGS_FILE",
    "Budget",
    "BudgetError",
    "Candidate",
    "CandidateScorer",
    "Evaluator",
    "EvolveConfig",
    "GenerationSummary",
    "LatencyFn",
    "SearchError",
    "SearchLog",
    "SearchResult",
    "candidate_front",
    "describe_budget",
    "generation_rng",
    "hypervolume",
    "load_candidates",
    "pareto_front",
    "parse_budget",
    "plot_pareto",
    "run_search",
    "unattainable_cost_budgets",
    "write_results",
]
