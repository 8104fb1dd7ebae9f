"""The experiment's configuration: one validated section per family, composed here.

Each family (space, strategy, estimator, target/costs, pruner, scheduler, data, executor) is a
registry in :mod:`hwnas.core.registry`; a section's ``name`` picks the kind and the kind's own
model validates the rest, so a typo in a key or a kind is an error that names the field. Each
plugin later receives only its own section. This module imports no torch: the CLI validates
configs fast.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from hwnas.core.config import KindConfig, Section, format_error, user_error
from hwnas.core.constraints import SCALED_UNITS, Constraint, Objective
from hwnas.core.errors import ConfigError, yaml_problem
from hwnas.core.metrics import base_name, direction, fmt_number, lookup, unit
from hwnas.core.registry import FAMILIES
from hwnas.core.yamlio import load_user_yaml
from hwnas.data.config import DataConfig
from hwnas.estimate.config import PrefilterConfig, TrainEstimatorConfig
from hwnas.experiment.executor_config import ExecutorConfig
from hwnas.hardware.config import CostModelConfig, CpuOrtTarget
from hwnas.oneshot.config import SupernetConfig
from hwnas.pruning.config import NoPrunerConfig, NoSchedulerConfig
from hwnas.space.config import ChainSpaceConfig
from hwnas.strategy.config import EvolutionStrategyConfig

__all__ = ["BudgetConfig", "ConfigError", "ExperimentConfig", "load_config", "validate_config"]

#: sections whose kind is picked by ``name`` (``--set space=graph``); ``costs`` is a list of them
KIND_SECTIONS = (
    "data",
    "space",
    "strategy",
    "estimator",
    "target",
    "pruner",
    "scheduler",
    "executor",
)
_REGISTRY_OF = {
    s: FAMILIES["target" if s in ("target", "costs") else s] for s in (*KIND_SECTIONS, "costs")
}


class BudgetConfig(Section):
    """When the search stops: distinct evaluations and/or wall-clock minutes."""

    trials: int = Field(60, ge=1, description="Distinct architectures evaluated (duplicates free).")
    minutes: float | None = Field(
        None,
        gt=0,
        description="Stop starting new trials after this many minutes of search (summed over "
        "resumptions: a resumed search gets what is left).",
    )


class FinalConfig(Section):
    """Final training of the chosen nets: after the search, each front member (chosen on
    validation accuracy) is trained again `repeats` times from scratch with other seeds and
    tested; its test accuracy is their mean and standard deviation. `hwnas train` uses it too.
    """

    repeats: int = Field(
        0, ge=0, le=50, description="Final trainings per front member; 0 = no final stage."
    )
    epochs: int | None = Field(
        None, ge=1, description="Epochs of a final training; default: the estimator's."
    )
    train_on_val: bool = Field(
        True,
        description="Train on the training and validation splits (selection is done by then); "
        "the test split is never trained on.",
    )
    max_models: int = Field(
        0,
        ge=0,
        description="At most this many front members, spread along it; 0 = all. Members "
        "that dominate a reference net (see `references`) on the search's figures come first. "
        "A resumed final stage finishes the nets it began and counts them against this.",
    )
    references: bool = Field(
        True,
        description="Also train the nets the search started from (`strategy.start`: the "
        "nets to beat) the same way, and choose first the front members that dominate one of "
        "them on validation accuracy and every other objective: the final test figures then "
        "say whether the search beat them, on one recipe.",
    )
    estimator: dict[str, Any] | None = Field(
        None,
        description="The estimator of the final trainings, an `estimator` section of its own "
        "(e.g. `{name: train, epochs: 30}`); default: the search's, or `train` with its "
        "defaults where the search's trains no weights of its own (`supernet` scores with "
        "a supernet's, `zero_cost` untrained nets).",
    )
    timing_rounds: int = Field(
        5,
        ge=0,
        le=50,
        description="After the final trainings, where a reference net (see `references`) "
        "has them, every net that has them is timed again on "
        "each latency objective that can be read again, all of them side by side in this "
        "many rounds, and keeps the median as `final_<metric>`: the verdict on the reference "
        "nets compares these, not the search's kept readings, taken at different times on a "
        "host whose load or clock may drift. 0 = no side-by-side timing.",
    )

    @field_validator("estimator", mode="before")
    @classmethod
    def _trains(cls, v: Any) -> Any:
        """A final estimator must train the nets it is given: refused here, before a search."""
        if v is None:
            return v
        if isinstance(v, str):  # `final.estimator=train`: a kind name alone
            v = {"name": v}
        cfg = _REGISTRY_OF["estimator"].validate(v, "final.estimator")
        if not getattr(cfg, "trains", True):
            raise ConfigError(
                f"config: final.estimator: {cfg.name} trains no nets; name one that does (train)"
            )
        return v


class ExperimentConfig(Section):
    """A whole experiment. Every key is listed in docs/configuration.md."""

    seed: int = Field(0, ge=0, description="Seed for the strategy, splits and training.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Where candidates train.")
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="Budget.")
    data: SerializeAsAny[KindConfig] = Field(default_factory=DataConfig, description="Dataset.")
    space: SerializeAsAny[KindConfig] = Field(
        default_factory=ChainSpaceConfig, description="Search space."
    )
    strategy: SerializeAsAny[KindConfig] = Field(
        default_factory=EvolutionStrategyConfig, description="Search strategy."
    )
    estimator: SerializeAsAny[KindConfig] = Field(
        default_factory=TrainEstimatorConfig, description="Performance estimation."
    )
    pruner: SerializeAsAny[KindConfig] = Field(
        default_factory=NoPrunerConfig,
        description="Stop rule for running trials, fed by the estimator's per-epoch reports.",
    )
    scheduler: SerializeAsAny[KindConfig] = Field(
        default_factory=NoSchedulerConfig,
        description="Fidelity schedule: at which fidelity archs are evaluated, which promoted.",
    )
    target: SerializeAsAny[CostModelConfig] = Field(
        default_factory=CpuOrtTarget, description="Hardware target."
    )
    costs: list[SerializeAsAny[CostModelConfig]] = Field(
        default_factory=list,
        description="Further cost sources after `target`, each a target kind (`name: ...`); a "
        "later source's metric replaces an earlier one's, `provides` picks metrics, `label` "
        "keeps them apart (`latency_ms@label`).",
    )
    objectives: list[Objective] = Field(
        default_factory=lambda: [
            Objective(metric="accuracy", direction="max"),
            Objective(metric="latency_ms", direction="min"),
        ],
        description="Objectives; `metric: max|min` mappings or `{metric, direction}`. "
        "`--set objectives.params=min` adds one to these, `=null` drops one.",
    )
    constraints: list[Constraint] = Field(
        default_factory=list, description="Hard constraints, e.g. `latency_ms <= 2.0`."
    )
    executor: SerializeAsAny[KindConfig] = Field(
        default_factory=ExecutorConfig, description="Executor."
    )
    final: FinalConfig = Field(
        default_factory=FinalConfig, description="Final training of the front (`hwnas train`)."
    )
    prefilter: PrefilterConfig = Field(
        default_factory=PrefilterConfig,
        description="A zero-cost proxy that warm-starts the search and filters proposals "
        "before training (docs/zero_cost.md).",
    )
    supernet: SupernetConfig = Field(
        default_factory=SupernetConfig,
        description="Supernet training of the one-shot strategies (`fbnet`, `darts`, `spos`).",
    )

    @field_validator(*KIND_SECTIONS, mode="before")
    @classmethod
    def _kind(cls, v: Any, info: Any) -> Any:
        """The section's kind (``name``, default the family's) validates the section."""
        return _REGISTRY_OF[info.field_name].validate(v, info.field_name)

    @field_validator("costs", mode="before")
    @classmethod
    def _costs(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out = []
        for i, c in enumerate(v):
            cfg = _REGISTRY_OF["costs"].validate(c, f"costs.{i}")
            if not type(cfg).extra_source:  # type: ignore[attr-defined]
                raise ConfigError(
                    f"config: costs.{i}: kind {cfg.name} cannot be an extra cost source (analytic "
                    "costs come with every built model; use target: tabular for a table)"
                )
            out.append(cfg)
        return out

    @field_validator("budget", mode="before")
    @classmethod
    def _budget_int(cls, v: Any) -> Any:
        return {"trials": v} if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = [{"metric": k, "direction": d} for k, d in v.items()]
        if isinstance(v, list):
            out = []
            for item in v:
                if isinstance(item, str):
                    item = {"metric": item, "direction": direction(item)}
                elif isinstance(item, dict) and len(item) == 1 and "metric" not in item:
                    ((k, d),) = item.items()
                    item = {"metric": k, "direction": d}
                out.append(item)
            return out
        return v

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = [f"{k} <= {val}" for k, val in v.items()]
        if isinstance(v, list):
            return [Constraint.parse(c) if isinstance(c, str) else c for c in v]
        return v

    def sources(self) -> list[tuple[str, CostModelConfig]]:
        """Every cost source with where it is configured: the target, then each `costs` entry."""
        return [("target", self.target), *((f"costs.{i}", c) for i, c in enumerate(self.costs))]

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if not self.objectives:
            raise ValueError("objectives: need at least one objective")
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError("objectives: a metric is listed twice")
        self.target.complete(self.estimator)  # e.g. a table target reads the estimator's table
        for where, src in self.sources():
            src.place(where)
            if src.provides is not None and not type(src).selectable:  # type: ignore[attr-defined]
                raise ValueError(
                    f"{where}.provides: not supported for {src.name} (it is for `costs` "
                    "entries and model-based kinds)"
                )
            unknown = [m for m in src.provides or [] if lookup(m) is None]
            if unknown:
                raise ValueError(f"{where}.provides: unknown metric {unknown[0]!r}")
        self._check_produced()
        objectives = [(o.metric, o.direction) for o in self.objectives]
        for key, section in (("pruner", self.pruner), ("scheduler", self.scheduler)):
            if self.estimator.name == "tabular" and section.name != "none":
                # every arch's figure is its final one: promotions repeated it, cut nothing
                raise ValueError(
                    f"{key}: {section.name} cuts trainings short, and a table has one fidelity "
                    f"(each arch's final figure); drop it ({key}=none)"
                )
        for section in (self.pruner, self.scheduler):
            check = getattr(section, "check", None)  # a stop rule must not cut the front
            if check is not None:
                check(objectives)
        self._add_capacities()
        # a GPU runtime times where candidates train (assigning re-validates: only on a change)
        device = type(self.target).device  # type: ignore[attr-defined]
        if device is not None and self.device != device:
            self.device = device  # type: ignore[assignment]
        for c in self.constraints:
            if not math.isfinite(c.value):
                raise ValueError(f"constraints: {c.metric}: the bound must be a finite number")
            if c.value < 0 or (c.op in ("<", "<=") and c.value == 0 and c.metric != "accuracy"):
                raise ValueError(f"constraints: {c} can never hold")
            if unit(c.metric) in SCALED_UNITS and c.op in ("<", "<=") and c.value < 1:
                # a count or a size is at least 1: `params <= 0.5` (meant as millions)
                # pruned every candidate of a search
                raise ValueError(
                    f"constraints: {c} can never hold ({base_name(c.metric)} is at least 1; "
                    f"for {c.value:g} million write {c.value:g}M)"
                )
            if c.metric == "accuracy" and (c.value > 1 or (c.op == ">" and c.value >= 1)):
                pct = c.op in (">", ">=") and c.value <= 100  # a percentage for a fraction
                hint = f"; did you mean {c.value / 100:g}?" if pct and c.value > 1 else ""
                raise ValueError(f"constraints: {c} can never hold (accuracy is 0-1{hint})")
        for metric in {c.metric for c in self.constraints}:  # e.g. <= 1 together with >= 2
            bounds = [c for c in self.constraints if c.metric == metric]
            upper = min((c.value for c in bounds if c.op in ("<", "<=")), default=math.inf)
            lower = max((c.value for c in bounds if c.op in (">", ">=")), default=-math.inf)
            strict = any(c.op in ("<", ">") and c.value in (upper, lower) for c in bounds)
            if lower > upper or (lower == upper and strict):
                shown = " and ".join(str(c) for c in bounds)
                raise ValueError(f"constraints: {shown} contradict each other")
        return self

    def _check_produced(self) -> None:
        """An objective or constraint no source of this run can give is refused, when every
        source says what it gives (a plugin may not know in advance)."""
        wanted = {o.metric for o in self.objectives} | {c.metric for c in self.constraints}
        made: set[str] = set()
        estimator_made = getattr(self.estimator, "produces", lambda: None)()
        if estimator_made is None:
            return
        made |= set(estimator_made)
        if getattr(self.estimator, "needs_model", True) or any(
            getattr(s, "needs_model", True) for _, s in self.sources()
        ):
            made |= _ANALYTIC
        for _, src in self.sources():
            names = src.metric_names()
            if names is None:
                return
            made |= names
        missing = sorted(wanted - made)
        if missing:
            m = missing[0]
            if m == "accuracy" or m.startswith("zc_"):  # scores come from the estimator alone
                gives = ", ".join(sorted(estimator_made)) or "no score"
                raise ValueError(
                    f"objectives/constraints: estimator `{self.estimator.name}` gives {gives}, "
                    f"not {m}; ask for what it gives, or choose another estimator"
                    + (" or estimator.proxy" if hasattr(self.estimator, "proxy") else "")
                )
            hint = (
                f"target `{self.target.name}` measures no {m}"
                if base_name(m) == "latency_ms"
                else f"no source of this run gives {m}"
            )
            near = sorted(n for n in made if base_name(n) == base_name(m))  # a label's typo
            has = f" (this run has {', '.join(near)})" if near else ""
            raise ValueError(
                f"objectives/constraints: {hint}{has}; add a source that does (target or costs)"
            )

    def _capacities(self) -> Iterator[tuple[str, float, Any]]:
        """Each device capacity as (metric, bound, source): a labelled source's metrics say
        whose; a capacity of a metric the source does not provide is none of the run's."""
        for _, src in self.sources():
            for base, cap in src.capacities().items():
                if src.provides is not None and base not in src.provides:
                    continue
                label = getattr(src, "label", None)
                yield (f"{base}@{label}" if label else base), cap, src

    def _add_capacities(self) -> None:
        """A device's memory capacities become constraints, so misfits are pruned before
        training (unless a tighter bound is given)."""
        for metric, cap, _ in list(self._capacities()):
            tighter = any(
                c.metric == metric and c.op in ("<=", "<") and c.value <= cap
                for c in self.constraints
            )
            if not tighter:
                self.constraints.append(Constraint(metric=metric, op="<=", value=cap))

    def capacity_notes(self) -> list[str]:
        """A user's bound looser than a device's capacity on the same metric: both stand,
        so the capacity binds -- said, since the user's figure is not the one that prunes."""
        return [
            f"{c} is looser than {getattr(src, 'spec', src.name)}'s capacity "
            f"({fmt_number(cap)}): the capacity is the bound that prunes"
            for metric, cap, src in self._capacities()
            for c in self.constraints
            if c.metric == metric and c.op in ("<=", "<") and c.value > cap
        ]

    def to_json_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        d["constraints"] = [str(c) for c in self.constraints]
        return d

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same experiment (budget and executor may change on resume)."""
        d = self.to_json_dict()
        d.pop("budget", None)
        d.pop("executor", None)  # the same search may resume with more or fewer workers
        d.pop("final", None)  # the final stage comes after the search: it may be changed
        return d


#: costs every built model gets, whatever the target (hwnas.hardware.analytic)
_ANALYTIC = {"params", "macs", "peak_memory_bytes", "model_bytes", "model_bytes_int8"}


# ------------------------------------------------------------------------- loading
def _parse_value(text: str, item: str) -> Any:
    """A ``--set`` value as YAML; an unparsable one is the plain string, except a list or
    mapping (``[...]``, ``{...}``), which the user meant as one: a string there only puzzles
    the validator ("should be a valid list")."""
    try:
        return load_user_yaml(text)
    except yaml.YAMLError as exc:
        if text.strip().startswith(("[", "{")):
            hint = (
                "; quote an item that starts with @, *, &, ! or %, e.g. ['@ref.json']"
                if any(c in text for c in "@*&!%")
                else ""
            )
            raise ConfigError(
                f"--set {item!r}: not valid YAML ({yaml_problem(exc)}){hint}"
            ) from None
        return text
    except (ValueError, RecursionError):  # unparsable: the plain string
        return text


def _field_names(section: str, kind: Any) -> set[str]:
    """The keys a section of ``kind`` takes, aliases included; none for a kind unknown
    (validation names it, unless a later override corrects it)."""
    if not isinstance(kind, str):
        return set()
    try:
        fields = _REGISTRY_OF[section].entry(kind).config.model_fields
    except ConfigError:
        return set()
    names = set(fields)
    for f in fields.values():
        alias = f.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias, f.alias]
        names |= {a for a in choices if isinstance(a, str)}
    return names


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides; ``space=graph`` means ``space.name=graph``.

    Changing a section's ``name`` drops the section's other keys, which belonged to the old
    kind, except those that overrides on the same command line set and the new kind has:
    ``pruner.percentile=25 pruner=median`` keeps 25 in either order (a shared list of flags
    for one kind may still be followed by a switch to another). Of a nested key only what
    the command line set is kept: ``estimator.fast.ema=0.9`` keeps ``ema``, not the file's
    other ``fast`` keys (a list is kept whole: its items have no names to prune by). A
    section given as a mapping (``strategy={name: bo, init: 3}``) replaces the file's.
    """
    mine: dict[str, set[tuple[str, ...]]] = {}  # per kind section: key paths these set
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, _, value = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key")
        if len(parts) == 1 and parts[0] in KIND_SECTIONS:
            whole = _parse_value(value, item)
            if isinstance(whole, dict):  # `strategy={name: bo, init: 3}`: the whole section
                raw[parts[0]] = whole
                mine[parts[0]] = {(k,) for k in whole}
                continue
            parts.append("name")
        if parts[0] == "objectives" and len(parts) >= 2 and not parts[1].isdigit():
            # a label may hold dots (`latency_ms@jetson.nano`): the rest is the metric
            _set_objective(raw, ".".join(parts[1:]), _parse_value(value, item), item)
            continue
        node: Any = raw
        for i, p in enumerate(parts[:-1]):
            if (
                isinstance(node, dict)
                and parts[i + 1].isdigit()
                and not isinstance(node.get(p), list)
            ):
                # the list has no items to index here (a default is not in `raw`)
                where = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"--set {item!r}: {where} is no list in this config to index into; set "
                    f"it whole (--set {where}=[...])"
                )
            if isinstance(node, list):
                try:
                    node = node[int(p)]
                except (ValueError, IndexError) as exc:
                    raise ConfigError(f"--set {item!r}: no list item {p!r}") from exc
                continue
            if not isinstance(node.get(p), dict | list):
                # a kind's name alone (`strategy.search=optuna`) stays the section's name
                node[p] = {"name": node[p]} if isinstance(node.get(p), str) else {}
            node = node[p]
        leaf = parts[-1]
        val = _parse_value(value, item)
        if isinstance(node, list):
            try:
                node[int(leaf)] = val
            except (ValueError, IndexError) as exc:
                raise ConfigError(f"--set {item!r}: no list item {leaf!r}") from exc
        else:
            default = _REGISTRY_OF[parts[0]].default if parts[0] in KIND_SECTIONS else None
            old = node.get("name", default)
            if leaf == "name" and len(parts) == 2 and old != val:
                ours = mine.get(parts[0], set())
                has = _field_names(parts[0], val) if ours else set()
                tops = {path[0] for path in ours}
                kept = {k: _only(node[k], ours, (k,)) for k in tops if k in node and k in has}
                node.clear()
                node.update(kept)
            node[leaf] = val
        if parts[0] in KIND_SECTIONS and len(parts) >= 2:
            mine.setdefault(parts[0], set()).add(tuple(parts[1:]))
    return raw


def _set_objective(raw: dict[str, Any], metric: str, sense: Any, item: str) -> None:
    """``objectives.params=min`` adds (or re-aims) one objective beside the others, whichever
    form holds them (a mapping, a list, none: the built-in default's); ``=null`` drops it.
    Without the default seeded here, a command line with no config file searched on params
    alone, accuracy gone."""
    if sense not in ("max", "min", None):
        raise ConfigError(f"--set {item!r}: an objective's direction is max or min (null drops it)")
    current = raw.get("objectives")
    if current is None:
        default = ExperimentConfig.model_fields["objectives"].get_default(call_default_factory=True)
        current = [o.model_dump() for o in default]
    items = ExperimentConfig._objectives(current)
    try:
        objectives = {o["metric"]: o["direction"] for o in items}
    except (TypeError, KeyError):
        raise ConfigError(
            f"--set objectives.{metric}: the objectives it adds to are not valid; set them "
            "whole (objectives={accuracy: max, latency_ms: min})"
        ) from None
    if sense is None:
        objectives.pop(metric, None)
    else:
        objectives[metric] = sense
    raw["objectives"] = objectives


def _only(value: Any, paths: set[tuple[str, ...]], at: tuple[str, ...]) -> Any:
    """The part of ``value`` (found at key path ``at``) that ``paths`` set: all of it where a
    path ends here or it is not a mapping, else only its keys on some path, pruned alike."""
    below = {p for p in paths if p[: len(at)] == at}
    if at in below or not isinstance(value, dict):
        return value
    keys = {p[len(at)] for p in below if len(p) > len(at)}
    return {k: _only(value[k], below, (*at, k)) for k in keys if k in value}


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    base: dict[str, Any] | None = None,
    **top_level: Any,
) -> ExperimentConfig:
    """Read YAML (or, without ``path``, ``base``, e.g. a study's stored config, or the
    built-in default), apply ``--set`` overrides and validate.

    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    raw: dict[str, Any] = json.loads(json.dumps(base)) if base is not None else {}
    if path is not None:
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"config {p}: is a directory, not a YAML file")
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = load_user_yaml(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {p}: not valid YAML ({yaml_problem(exc)})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config {p}: not a text (UTF-8) YAML file") from None
        except RecursionError:
            raise ConfigError(f"config {p}: nested too deeply to be a config") from None
        except ValueError:  # e.g. an integer of 100 000 digits (Python's conversion limit)
            raise ConfigError(f"config {p}: holds a number too long to read") from None
        except OSError as exc:
            raise ConfigError(f"config {p}: cannot be read ({exc.strerror})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {p}: top level must be a mapping of sections")
        raw = loaded
    raw = apply_overrides(raw, overrides or [])
    said = _set_alone(overrides or []) if any(v is not None for v in top_level.values()) else {}
    for k, v in top_level.items():
        if v is None:
            continue
        _refuse_two_answers(k, v, said)
        if k == "budget":
            b = raw.get("budget")
            raw["budget"] = {**(b if isinstance(b, dict) else {}), "trials": v}
        elif k == "data_path":
            data = raw.setdefault("data", {})
            if not isinstance(data, dict):
                raise ConfigError("data: must be a mapping (name, path, ...)")
            if data.get("name") == "digits":
                raise ConfigError(
                    "--data: data.name is digits, which is bundled and reads no path; drop "
                    "--data or name the kind the path holds (data.name=cifar10, imagefolder)"
                )
            data.setdefault("name", "cifar10")  # the unset default digits reads no path
            data["path"] = v
        else:
            raw[k] = v
    cfg = validate_config(raw)
    if base is None:  # a study's own config resumes as it was stored
        _read_by_this_search(cfg)
    return cfg


def _check_final(cfg: ExperimentConfig) -> None:
    """The final stage trains nets: beside an estimator that builds none (a table), only
    with an estimator of its own, on data named for it. A table's final runs failed one by
    one with a bare AssertionError; a `train` estimator there trained the cells on the
    default digits and reported that as their test accuracy beside CIFAR's."""
    if getattr(cfg.estimator, "needs_model", True):
        return
    name = cfg.estimator.name
    if cfg.final.repeats > 0 and cfg.final.estimator is None:
        raise ConfigError(
            f"config: final.repeats: estimator `{name}` trains no nets (the front's test "
            "accuracy is its own); drop final.repeats, or name final.estimator (e.g. "
            "{name: train}) and the data to train them on"
        )
    if cfg.final.estimator is not None and "data" not in cfg.model_fields_set:
        raise ConfigError(
            f"config: final.estimator trains the front on `data`, left at its default "
            f"({cfg.data.name}) beside estimator `{name}`; name the data the nets are for "
            "(data.name, data.path)"
        )


def _read_by_this_search(cfg: ExperimentConfig) -> None:
    """Refuse what the chosen strategy would ignore, where a user's config is read (not a
    study's stored one, which resumes as it was). Evolution's ``weights`` on no objective or
    without scalar selection, and ``supernet.weights`` beside evolution, were ignored without
    a word; a one-shot strategy with ``estimator: supernet`` was refused as if the space had
    no supernet."""
    _check_final(cfg)
    one_shot = getattr(cfg.strategy, "trains_supernet", False)
    if one_shot and cfg.estimator.name == "supernet":
        raise ConfigError(
            f"config: estimator: supernet scores archs with a trained supernet for another "
            f"strategy (evolution, random, bo, ...); strategy {cfg.strategy.name} trains and "
            "scores with its own: drop estimator=supernet"
        )
    weights = getattr(cfg.strategy, "weights", None) or {}  # evolution's scalar selection
    named = [o.metric for o in cfg.objectives]
    if stray := sorted(set(weights) - set(named)):  # it would weigh nothing, silently
        raise ConfigError(
            f"config: strategy.weights: {', '.join(stray)} "
            f"{'is no objective' if len(stray) == 1 else 'are no objectives'} of this search "
            f"(objectives: {', '.join(named)})"
        )
    if weights and getattr(cfg.strategy, "selection", None) != "scalar":
        raise ConfigError(
            "config: strategy.weights: only `selection: scalar` weighs objectives "
            f"(this search selects by {getattr(cfg.strategy, 'selection', None)})"
        )
    if cfg.supernet.weights is not None and not one_shot:
        # the section's other keys may ride along in a reused one-shot config file; a
        # checkpoint to start from was meant to be used (estimator.weights, most likely)
        raise ConfigError(
            f"config: supernet.weights: read by the one-shot strategies (fbnet, darts, spos), "
            f"not {cfg.strategy.name}; a trained supernet scores archs for it as "
            "estimator=supernet with estimator.weights"
        )


#: the command-line flag of each top-level value ``load_config`` takes, and the key it sets
_FLAGS = {
    "budget": ("--budget", ("budget", "trials")),
    "seed": ("--seed", ("seed",)),
    "data_path": ("--data", ("data", "path")),
    "device": ("--device", ("device",)),
}


def _set_alone(overrides: list[str]) -> dict[str, Any]:
    """What the ``--set`` items set by themselves, without the config file's sections."""
    try:
        return apply_overrides({}, list(overrides))
    except ConfigError:  # only meaningful over the file's sections: applied there already
        return {}


def _refuse_two_answers(key: str, value: Any, said: dict[str, Any]) -> None:
    """A flag and a ``--set`` of the same key on one command line must agree (``said``:
    what the ``--set`` items alone set): the flag would win without a word, and a user who
    typed both meant one of them (whatever the config file says)."""
    if key not in _FLAGS:
        return
    flag, where = _FLAGS[key]
    raw: Any = said
    for i, part in enumerate(where):
        raw = raw.get(part) if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or i == len(where) - 1:
            break  # a value at the key, or one in its section's place (`--set budget=5`)
    dotted = ".".join(where[: i + 1])
    if raw is not None and not _same(key, raw, value):
        raise ConfigError(f"{flag} {value} and --set {dotted}={raw} disagree: give one of them")


def _same(key: str, x: Any, y: Any) -> bool:
    """Whether a ``--set`` value and a flag's say the same: one path however spelled, 3 and
    3.0; a boolean is no number here."""
    if key == "data_path":
        return Path(str(x)).expanduser().resolve() == Path(str(y)).expanduser().resolve()
    if not isinstance(x, bool) and not isinstance(y, bool):
        with contextlib.suppress(TypeError, ValueError):
            return float(x) == float(y)
    return str(x) == str(y)


def validate_config(raw: dict[str, Any]) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise user_error(exc) or ConfigError(format_error(exc)) from None
