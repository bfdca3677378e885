"""The built-in model family: small Llama models whose roles mirror the paper's (Section 5.1).

``build_family(scale)`` builds it into the cache (``harness zoo build``); ``zoo_role_path(role, scale)``
returns one checkpoint, building what it needs on first use; ``family_manifest(scale)`` describes it
(``harness zoo list``). Real models (hub ids, local directories, GGUF files) load through
:mod:`harness.models`.
"""

from harness.prompts import format_prompt
from harness.zoo.build import ZooNotBuiltError, build_family, family_dir, family_manifest, zoo_role_path
from harness.zoo.corpus import in_zoo_math_half
from harness.zoo.recipe import RECIPES, ROLE_BY_NAME, ROLES, SCALES, Recipe, Role, recipe_for
from harness.zoo.tokenizer import CODE_TOKENS

__all__ = [
    "CODE_TOKENS", "RECIPES", "ROLES", "ROLE_BY_NAME", "SCALES", "Recipe", "Role", "ZooNotBuiltError",
    "build_family", "family_dir", "family_manifest", "format_prompt", "in_zoo_math_half", "recipe_for",
    "zoo_role_path",
]
