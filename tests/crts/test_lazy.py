from __future__ import annotations

import pytest

import crts.models
from crts.lazy import lazy_exports


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    get, _ = lazy_exports("crts.data", {"loader": "batches"})
    with pytest.raises(AttributeError, match=r"^module 'crts.data' has no attribute 'Loader'$"):
        get("Loader")


def test_the_models_package_lists_its_public_names_and_finds_its_submodules() -> None:
    assert {"MODELS", "BASELINES", "new_baseline", "ResNet3D"} <= set(dir(crts.models))
    from crts.models import kinds  # a submodule, not a public name

    assert kinds.RECIPES
