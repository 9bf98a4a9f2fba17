"""Exact, ground-truth hallucination evaluation of a model's answers (layout: ``study/eval/LAYOUT.md``).

Modules: :mod:`.mentions` (object-mention parser), :mod:`.chair` (CHAIR on descriptions), :mod:`.pope`
(existence QA), :mod:`.typed_qa` (MMHal-style typed QA), :mod:`.helpfulness` (fact coverage),
:mod:`.bootstrap` (CIs), :mod:`.suites` (items) and :mod:`.runner` (answer, score, write).
"""

from study.eval.bootstrap import bootstrap_ci, bootstrap_table, ratio
from study.eval.chair import CHAIR_METRICS, chair_stats
from study.eval.helpfulness import HELPFULNESS_METRICS, helpfulness_stats
from study.eval.mentions import Mention, asserted_categories, parse_mentions
from study.eval.pope import POPE_METRICS, pope_parse, pope_questions, pope_stats
from study.eval.runner import item_stats, run_predictions, score, score_files, write_results
from study.eval.suites import SUITES, build_items
from study.eval.typed_qa import QTYPES, TYPED_METRICS, grade, typed_questions, typed_stats

__all__ = [
    "Mention",
    "parse_mentions",
    "asserted_categories",
    "chair_stats",
    "CHAIR_METRICS",
    "helpfulness_stats",
    "HELPFULNESS_METRICS",
    "pope_questions",
    "pope_parse",
    "pope_stats",
    "POPE_METRICS",
    "typed_questions",
    "grade",
    "typed_stats",
    "TYPED_METRICS",
    "QTYPES",
    "bootstrap_ci",
    "bootstrap_table",
    "ratio",
    "SUITES",
    "build_items",
    "run_predictions",
    "item_stats",
    "score",
    "score_files",
    "write_results",
]
