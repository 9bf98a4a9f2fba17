"""The model organism's visual world: a spec, scene graphs, rendering, language and the SFT corpus."""

from study.world.scenes import Scene, SceneObject, generate_split
from study.world.spec import WorldSpec, load_spec

__all__ = ["WorldSpec", "load_spec", "Scene", "SceneObject", "generate_split"]
