import sys
import textwrap

import pytest

from harness.registry import Registry, RegistryError


def test_register_get_and_aliases():
    reg = Registry("widget")
    reg.register("alpha-one", 1, aliases=("a1",))
    assert reg.get("alpha-one") == 1
    assert reg.get("A1") == 1  # aliases and case-insensitive lookup
    assert reg.canonical("a1") == "alpha-one"
    assert reg.names() == ["alpha-one"]
    assert "a1" in reg and "nope" not in reg


def test_duplicates_rejected_including_alias_clashes():
    reg = Registry("widget")
    reg.register("lora", 1, aliases=("low-rank",))
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("lora", 2)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("other", 2, aliases=("low-rank",))
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("low-rank", 3)
    # What the error advises works: unregistering frees the name and its aliases for a replacement.
    reg.unregister("low-rank")
    assert "lora" not in reg and "low-rank" not in reg
    reg.register("lora", 4, aliases=("low-rank",))
    assert reg.get("low-rank") == 4


def test_names_must_be_lowercase():
    reg = Registry("widget")
    with pytest.raises(RegistryError, match="invalid widget name"):
        reg.register("LoRA", 1)


def test_unknown_name_suggests_closest():
    reg = Registry("method")
    for name in ("pen2sword", "pen2sword-f", "lora", "dora"):
        reg.register(name, name)
    with pytest.raises(RegistryError) as err:
        reg.get("pen2swrd")
    message = str(err.value)
    assert "unknown method 'pen2swrd'" in message
    assert "Did you mean: pen2sword" in message
    assert "Known methods:" in message and "lora" in message


def test_entry_point_plugins_register_themselves(tmp_path, monkeypatch):
    """A third-party package registers a method through the ``harness.methods`` entry-point group."""
    pkg = tmp_path / "thirdparty_baseline"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        def register(registry):
            registry.register("my-baseline", "plugin-object", aliases=("mine",))
    """))
    dist = tmp_path / "thirdparty_baseline-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-baseline\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[harness.methods]\nmine = thirdparty_baseline:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("method", "harness.methods")
    assert reg.get("my-baseline") == "plugin-object"
    assert reg.get("mine") == "plugin-object"
    assert "my-baseline" in reg.names()
    sys.modules.pop("thirdparty_baseline", None)


def test_global_registries_are_distinct():
    from harness.registry import DATASETS, METHODS, MODELS, SUITES

    assert len({id(r) for r in (DATASETS, METHODS, MODELS, SUITES)}) == 4
    assert METHODS.entry_point_group == "harness.methods"
