"""Extension points: classes registered by name, one module each.

A registry belongs to a package (judge kinds, model backends, training backends). Its
classes register themselves with a decorator; every module of the package is imported on
first use, then what installed packages declare under the registry's entry point group, so
adding one is adding one module. This is the one place that says how they are found.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named classes of one kind, found in ``package`` and the ``entry_point_group``."""

    def __init__(self, package: str, entry_point_group: str, what: str):
        self.package, self.entry_point_group, self.what = package, entry_point_group, what
        self._classes: dict[str, type[T]] = {}
        self._found = False

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: make ``cls`` available under its ``name``."""
        name = cls.name  # type: ignore[attr-defined]
        known = self._classes.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"{self.what} {name!r} is registered twice ({known.__module__}, {cls.__module__})")
        self._classes[name] = cls
        return cls

    def classes(self) -> dict[str, type[T]]:
        """Every registered class, in declared ``order`` (then by name)."""
        if not self._found:
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self.package}.{module.name}")
            for point in entry_points(group=self.entry_point_group):
                point.load()
            self._found = True
        return dict(sorted(self._classes.items(), key=lambda item: (getattr(item[1], "order", 0), item[0])))

    def get(self, name: str) -> type[T]:
        classes = self.classes()
        if name not in classes:
            raise ValueError(f"no {self.what} {name!r} (registered: {', '.join(sorted(classes))})")
        return classes[name]
