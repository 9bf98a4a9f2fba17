"""Preference datasets of the paper rebuilt in the world (paper §3.1–3.2, §5.2–5.3, Table 7).

Schema and I/O: :mod:`.schema`. Recipes (one per module, each ``recipe(world, *, n, seed, ...) -> rows``,
registered in :data:`RECIPES`): :mod:`.bdhs`, :mod:`.povid`, :mod:`.vlfeedback`, :mod:`.rlhfv`,
:mod:`.vlf_corrupted`, :mod:`.random_corruption`. Annotators (oracle, noisy oracle, learned reward model)
and their held-out accuracy: :mod:`.annotators`, :mod:`.reward_model`. Scene-graph claim checks shared by
the oracle and the corruption/correction recipes: :mod:`.facts`.
"""

from study.prefs.annotators import (
    Annotator,
    NoisyOracleAnnotator,
    OracleAnnotator,
    RewardModelAnnotator,
    annotator_accuracy,
)
from study.prefs.bdhs import bdhs_recipe
from study.prefs.facts import check_claims, parse_prompt, qa_grade
from study.prefs.povid import corrupt, noisy_rejections, povid_recipe, teacher_forced_rejections
from study.prefs.random_corruption import random_corruption_recipe
from study.prefs.reward_model import LlavaRewardModel, RMParams, load_reward_model, reward_scores, train_reward_model
from study.prefs.rlhfv import correct_answer, rlhfv_recipe
from study.prefs.schema import COLUMNS, PrefSchemaError, load_prefs, make_row, save_prefs, to_trl, validate_rows
from study.prefs.sources import corpus_items, subsample
from study.prefs.vlf_corrupted import vlf_corrupted_recipe
from study.prefs.vlfeedback import vlfeedback_recipe

RECIPES = {
    "bdhs": bdhs_recipe,
    "povid": povid_recipe,
    "vlfeedback": vlfeedback_recipe,
    "rlhfv": rlhfv_recipe,
    "vlf_corrupted": vlf_corrupted_recipe,
    "random_corruption": random_corruption_recipe,
}

__all__ = [
    "RECIPES",
    "COLUMNS",
    "PrefSchemaError",
    "make_row",
    "validate_rows",
    "save_prefs",
    "load_prefs",
    "to_trl",
    "subsample",
    "corpus_items",
    "bdhs_recipe",
    "povid_recipe",
    "vlfeedback_recipe",
    "rlhfv_recipe",
    "vlf_corrupted_recipe",
    "random_corruption_recipe",
    "corrupt",
    "teacher_forced_rejections",
    "noisy_rejections",
    "correct_answer",
    "Annotator",
    "OracleAnnotator",
    "NoisyOracleAnnotator",
    "RewardModelAnnotator",
    "annotator_accuracy",
    "LlavaRewardModel",
    "RMParams",
    "train_reward_model",
    "load_reward_model",
    "reward_scores",
    "check_claims",
    "parse_prompt",
    "qa_grade",
]
