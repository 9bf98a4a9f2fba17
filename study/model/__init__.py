"""One model interface for every stage: build, load, generate — for any LLaVA-family checkpoint."""

from study.model.generate import generate
from study.model.load import load_model

__all__ = ["load_model", "generate"]
