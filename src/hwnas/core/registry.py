"""One registry per plugin family: a name bound to its config model and its factory.

Every family -- space, strategy, estimator, cost model (``target`` / ``costs``), pruner,
scheduler, data, executor -- is a :class:`Registry`. ``register`` binds a kind's name to the
pydantic model of its config section and to the factory that builds it; config validation,
``--set section=kind``, ``hwnas config --reference`` and the one-line errors are all derived
from the registries, so a new kind is one class and one decorator. Built-in kinds are declared
in torch-free ``config`` modules with the factory as a ``"module:attr"`` string, so validating a
config never imports a model library.

Out-of-tree plugins are packages that declare an entry point in the ``hwnas.plugins`` group; it
names a module (or a callable) that registers kinds when loaded. Plugins load lazily -- only
when a config names a kind the built-ins lack, or when every kind is listed -- so a broken
plugin breaks only the command that uses it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from hwnas.core.config import KindConfig, format_error
from hwnas.core.errors import ConfigError, PluginError

ENTRY_POINT_GROUP = "hwnas.plugins"

C = TypeVar("C", bound=type[BaseModel])


@dataclass
class Entry:
    name: str
    config: type[KindConfig]
    factory: Callable[..., Any] | str
    plugin: str | None = None  # the entry point that registered it; None for built-ins
    pattern: re.Pattern[str] | None = None  # further names it claims (``module:Class``)

    def resolve(self) -> Callable[..., Any]:
        if isinstance(self.factory, str):
            module, _, path = self.factory.partition(":")
            obj: Any = importlib.import_module(module)
            for attr in path.split("."):  # ``module:Class.from_config`` names a classmethod
                obj = getattr(obj, attr)
            self.factory = obj
        assert callable(self.factory)
        return self.factory


T = TypeVar("T")


class Registry(Generic[T]):
    """The kinds of one family, e.g. ``spaces``; ``section`` is its config key."""

    def __init__(self, section: str, builtins: tuple[str, ...], default: str | None) -> None:
        self.section = section
        self.default = default
        self._builtins = builtins
        self._entries: dict[str, Entry] = {}
        self._builtins_loaded = False

    # ------------------------------------------------------------------ declaring
    def register(
        self,
        name: str,
        config: type[KindConfig] | None = None,
        factory: Callable[..., Any] | str | None = None,
        *,
        pattern: str | None = None,
    ) -> Any:
        """Bind ``name`` to a config model and a factory.

        Give both, or use it as a decorator on the one left out: on the config class (with
        ``factory=`` a callable or a lazy ``"module:attr"`` string, as the built-ins do) or on
        the factory (with ``config``, as a plugin usually does). ``factory(section, *args)``
        builds the kind; the args are the family's (a space takes none, a strategy
        ``space, objectives, seed``...). ``pattern`` lets an entry claim further names (the
        user space claims ``module.path:ClassName``).
        """
        if config is None or factory is None:

            def decorate(obj: Any) -> Any:
                if config is None:
                    self.register(name, obj, factory, pattern=pattern)
                else:
                    self.register(name, config, obj, pattern=pattern)
                return obj

            return decorate
        plugin = _loading_plugin
        old = self._entries.get(name)
        if old is not None and (old.config is not config or old.plugin != plugin):
            who = f"plugin {plugin!r}" if plugin else "hwnas"
            taken = "hwnas" if old.plugin is None else f"plugin {old.plugin!r}"
            raise PluginError(
                f"{who} registers {self.section} kind {name!r}, a name {taken} already uses"
            )
        self._entries[name] = Entry(
            name, config, factory, plugin, re.compile(pattern) if pattern else None
        )
        return factory

    # ------------------------------------------------------------------- looking up
    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for module in self._builtins:
                importlib.import_module(module)

    def _find(self, name: str) -> Entry | None:
        entry = self._entries.get(name)
        if entry is None:
            entry = next(
                (e for e in self._entries.values() if e.pattern and e.pattern.fullmatch(name)),
                None,
            )
        return entry

    def entry(self, name: str, where: str | None = None) -> Entry:
        """The entry for ``name``, loading plugins if the built-ins lack it; ``where`` names
        the section in an error (a nested one: ``strategy.search``)."""
        self._load_builtins()
        entry = self._find(name)
        if entry is None:
            load_plugins()
            entry = self._find(name)
        if entry is None:
            raise_plugin_errors()  # a broken plugin may be the one that offers it
            raise ConfigError(
                f"config: {where or self.section}.name: unknown {self.section} kind {name!r}; "
                f"known: {', '.join(self.names())}"
            )
        return entry

    def names(self) -> list[str]:
        """Every kind, plugins included (a broken plugin is an error here: the list would
        be incomplete)."""
        self._load_builtins()
        load_plugins()
        raise_plugin_errors()
        return list(self._entries)

    def entries(self) -> list[Entry]:
        self.names()
        return list(self._entries.values())

    def builtin_names(self) -> list[str]:
        self._load_builtins()
        return [n for n, e in self._entries.items() if e.plugin is None]

    # ------------------------------------------------------------------- using
    def validate(self, raw: Any, where: str | None = None) -> KindConfig:
        """A validated section: ``raw`` is a mapping (``name`` picks the kind, default
        :attr:`default`) or an already validated model."""
        where = where or self.section
        if isinstance(raw, KindConfig):
            self.entry(raw.name)  # registered (a plugin's model is validated by its class)
            return raw
        if not isinstance(raw, dict):
            raise ConfigError(f"config: {where}: expected a mapping with `name` (got {raw!r})")
        name = raw.get("name", self.default)
        if not isinstance(name, str):
            raise ConfigError(f"config: {where}.name: expected a kind name (got {name!r})")
        entry = self.entry(name, where)
        try:
            return entry.config.model_validate({**raw, "name": name})
        except ValidationError as exc:
            raise ConfigError(format_error(exc, where)) from None

    def create(self, cfg: KindConfig, *args: Any, **kwargs: Any) -> T:
        """Build the kind ``cfg`` names from its own section (and the family's arguments)."""
        return self.entry(cfg.name).resolve()(cfg, *args, **kwargs)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- plugins
_loading_plugin: str | None = None
_plugins_loaded = False
_plugin_errors: list[PluginError] = []


def load_plugins() -> list[str]:
    """Import every ``hwnas.plugins`` entry point once; returns their names.

    Each plugin loads on its own: one that fails to import, or registers a name already
    taken, is remembered as a one-line :class:`PluginError` naming it, and raised only where
    it matters (a kind no loaded plugin offers, or a listing of every kind), so a broken
    plugin does not block the kinds of the others.
    """
    global _loading_plugin, _plugins_loaded
    eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if _plugins_loaded:
        return [ep.name for ep in eps]
    _plugins_loaded = True
    for ep in eps:
        _loading_plugin = ep.name
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, ModuleType):
                obj()
        except PluginError as exc:
            _plugin_errors.append(exc)
        except Exception as exc:  # noqa: BLE001 - any import failure is the plugin's
            first = str(exc).splitlines()[0] if str(exc) else ""
            _plugin_errors.append(
                PluginError(
                    f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {first}"
                )
            )
        finally:
            _loading_plugin = None
    return [ep.name for ep in eps]


def raise_plugin_errors() -> None:
    """Raise the first remembered plugin failure, if any."""
    if _plugin_errors:
        raise _plugin_errors[0]


# ---------------------------------------------------------------------- families
spaces: Registry[Any] = Registry("space", ("hwnas.space.config",), "chain")
strategies: Registry[Any] = Registry("strategy", ("hwnas.strategy.config",), "evolution")
estimators: Registry[Any] = Registry("estimator", ("hwnas.estimate.config",), "train")
cost_models: Registry[Any] = Registry("target", ("hwnas.hardware.config",), "cpu-ort")
pruners: Registry[Any] = Registry("pruner", ("hwnas.pruning.config",), "none")
schedulers: Registry[Any] = Registry("scheduler", ("hwnas.pruning.config",), "none")
datasets: Registry[Any] = Registry("data", ("hwnas.data.config",), "digits")
executors: Registry[Any] = Registry("executor", ("hwnas.experiment.executor_config",), "inprocess")

#: config section -> registry (``costs`` entries use the ``target`` registry)
FAMILIES: dict[str, Registry[Any]] = {
    r.section: r
    for r in (spaces, strategies, estimators, cost_models, pruners, schedulers, datasets, executors)
}
