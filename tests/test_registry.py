"""Extension points: every module of a registry's package is found, in declared order, and a
name registered twice or asked for but absent is an error naming the others."""

import sys

import pytest

from cbtflow.registry import Registry

MODULE = """
from plugins import REGISTRY


@REGISTRY.register
class {name}:
    name = "{name}"
    order = {order}
"""


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    package = tmp_path / "plugins"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from cbtflow.registry import Registry\nREGISTRY = Registry(__name__, 'cbtflow.test_plugins', 'plugin')\n"
    )
    for name, order in (("late", 90), ("early", 10)):
        (package / f"{name}.py").write_text(MODULE.format(name=name, order=order))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for module in [m for m in sys.modules if m == "plugins" or m.startswith("plugins.")]:
        del sys.modules[module]


def test_a_module_dropped_into_the_package_is_found_in_declared_order(plugins):
    from plugins import REGISTRY

    assert list(REGISTRY.classes()) == ["early", "late"]
    assert REGISTRY.get("late").order == 90
    with pytest.raises(ValueError, match=r"no plugin 'other' \(registered: early, late\)"):
        REGISTRY.get("other")


def test_one_name_registered_by_two_classes_is_refused():
    registry = Registry("cbtflow", "cbtflow.test_plugins", "plugin")

    class One:
        name = "same"

    class Two:
        name = "same"

    registry.register(One)
    with pytest.raises(ValueError, match="plugin 'same' is registered twice"):
        registry.register(Two)
