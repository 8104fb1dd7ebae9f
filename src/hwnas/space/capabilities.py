"""What a space can do beyond the basics: small protocols that strategies and cost models ask for.

Every space implements :class:`~hwnas.space.base.Space`: sample, validate, canonical, build,
describe, size. Everything else is a *capability*, a protocol of a few methods that one family
of consumers needs:

- :class:`Evolvable` (sample, mutate, crossover): evolution;
- :class:`Neighbourly` (neighbours): hill climbing, local search;
- :class:`Vectorizable` (encode): surrogates (learned predictors, NASH's guide);
- :class:`Encodable` (encode + parameters, from_parameters, to_parameters): Optuna's samplers;
- :class:`Morphable` (start_arch, random_morph, morph_sequence, inherit): NASH;
- :class:`BlockDecomposable` (blocks_id, blocks, all_blocks): latency lookup tables;
- :class:`Supernet` (choices, from_choices, to_choices, supernet): one-shot and
  differentiable search; :class:`PerChoiceCosts` (choice_blocks): its resource losses.

A space has a capability by having its methods: the protocols are structural, so a plugin
space takes part by writing methods, with no base class to inherit. A space that cannot do
something simply leaves the methods out; a subclass that inherits a method it cannot honour
marks it :func:`unsupported`. :func:`supports` is the one test every consumer uses, and
``tests/test_space_conformance.py`` checks the contract of each capability a space has.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    import random

    from torch import Tensor, nn

    from hwnas.space.base import Arch

Shape = tuple[int, int, int]
#: one network morphism (JSON): its ``kind`` and where it applies
Morph = dict[str, Any]


# ------------------------------------------------------------------------ protocols
@runtime_checkable
class Evolvable(Protocol):
    """Random archs and small random changes of them: all that evolutionary search needs.

    ``sample`` is also part of every space (random search is every strategy's baseline);
    it is listed here so the protocol reads as the whole contract evolution relies on.
    """

    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random arch, the same for the same rng state (searches are seeded)."""
        ...

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """A child that builds another network than ``arch`` (never a no-op: a child with its
        parent's hash would be answered from the store and waste a generation)."""
        ...

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """A valid child mixing two parents' choices (spaces without aligned genes may
        return a mutation of ``a``)."""
        ...


@runtime_checkable
class Neighbourly(Protocol):
    """The archs one elementary change away: what hill climbing and local search walk."""

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every arch one change away, distinct by :meth:`Space.arch_hash` and excluding
        ``arch`` itself (so a walk never stands still or counts a network twice)."""
        ...


@runtime_checkable
class Vectorizable(Protocol):
    """A fixed-length numeric vector per arch: what surrogate models fit on (learned cost
    predictors, the Gaussian process that guides NASH, Bayesian optimisation)."""

    def encode(self, arch: Arch) -> list[float]:
        """The same length for every arch of the space (a model's input width is fixed)."""
        ...


@runtime_checkable
class Encodable(Vectorizable, Protocol):
    """Named genes with a few values each, for generic samplers (Optuna's TPE, NSGA-II), plus
    the vector of :class:`Vectorizable` for surrogates.

    A generic sampler knows nothing of archs: it picks one value per gene and the space turns
    the pick into an arch, and back, for results it did not propose (resumed or duplicate
    trials), so the space, not the strategy, parses its own arch JSON.
    """

    def parameters(self) -> dict[str, list[Any]]:
        """Every gene and its allowed values, in a fixed order (samplers draw in this order)."""
        ...

    def from_parameters(self, params: dict[str, Any]) -> Arch:
        """The valid arch for one value per gene (a space may repair a combination that is
        not legal, e.g. an identity where shapes change)."""
        ...

    def to_parameters(self, arch: Arch) -> dict[str, Any]:
        """One value per gene for ``arch``: ``from_parameters`` of it builds ``arch``'s
        network (the inverse a sampler needs to learn from results it did not propose)."""
        ...


@runtime_checkable
class Morphable(Protocol):
    """Function-preserving changes with weight inheritance (network morphisms): what NASH
    climbs with. A child starts computing exactly what its trained parent computes, so a few
    epochs of training on tell more than training from scratch would."""

    def start_arch(self) -> Arch:
        """The small net a morphism search starts from (trained from scratch)."""
        ...

    def random_morph(
        self, arch: Arch, rng: random.Random, kinds: tuple[str, ...] | None = None
    ) -> Morph:
        """One morphism that applies to ``arch`` (``kinds`` restricts them; None: the
        configured ones); raises InvalidArch when none applies (the space's limits)."""
        ...

    def morph_sequence(
        self, arch: Arch, n: int, rng: random.Random, kinds: tuple[str, ...] | None = None
    ) -> tuple[Arch, list[Morph]]:
        """The child after ``n`` random morphisms, and those morphisms (JSON: they are
        stored with the trial, which replays them on its parent's weights)."""
        ...

    def inherit(
        self, parent: Arch, state: dict[str, Tensor], morphs: list[Morph]
    ) -> tuple[Arch, dict[str, Tensor]]:
        """The child of ``parent`` under ``morphs`` and its weights (a state dict of the
        built child) computed from the parent's ``state`` so that, in eval mode, the child's
        outputs equal the parent's."""
        ...


class Block(NamedTuple):
    """One timed unit of a network, in its context (a tuple: cheap to make per prediction).

    ``key`` must name everything that changes the block's latency (op, kernel, channels,
    input shape, stride...), since tables are shared across spaces. ``build`` makes the
    module only when it is timed. ``first``: it consumes the network input, so it is timed
    alone rather than after an adapter.
    """

    key: str
    input_shape: Shape
    build: Callable[[], nn.Module]
    first: bool = False


@runtime_checkable
class BlockDecomposable(Protocol):
    """A network as a sequence of blocks whose costs add up: what latency lookup tables time
    once and sum (and what a resource loss would weigh per choice).

    The space, which knows what its networks are made of, lists the blocks; a cost model
    never needs to know which space it costs.
    """

    def blocks_id(self) -> str:
        """Identity of the space's configuration: a lookup table fits its overhead per
        space, and two configurations build different networks from the same blocks."""
        ...

    def blocks(self, arch: Arch, input_shape: Shape, num_classes: int) -> list[Block]:
        """The blocks ``arch``'s network is made of, in order; cheap (builds nothing)."""
        ...

    def all_blocks(self, input_shape: Shape, num_classes: int) -> list[Block] | None:
        """Every block any arch can contain, for a full table build; None if the space
        cannot enumerate them (its tables then fill in as archs are seen)."""
        ...


@runtime_checkable
class Supernet(Protocol):
    """An arch as one pick per position among fixed candidates, and a network holding every
    candidate at once (weight sharing): what one-shot and differentiable search need.

    A one-shot strategy trains the supernet's shared weights over sampled paths, learns which
    pick pays at each position (architecture weights, a resource loss from per-choice costs),
    and writes the derived archs -- ordinary archs of the space -- to the store as
    ``stage="derived"`` proposals, so the front, re-timing, report and export treat them like
    any other trial.
    """

    def choices(self) -> list[list[str]]:
        """Per position, the names of its candidate ops (fixed order: a pick is an index)."""
        ...

    def from_choices(self, picks: list[int]) -> Arch:
        """The arch picking ``picks[j]`` at position ``j``."""
        ...

    def to_choices(self, arch: Arch) -> list[int]:
        """The picks of ``arch`` (the inverse of :meth:`from_choices`)."""
        ...

    def supernet(self, input_shape: Shape, num_classes: int) -> nn.Module:
        """A module holding every candidate of every position; ``forward(x, path)`` takes per
        position either ``(index, gate)`` -- one pick, its output multiplied by ``gate`` (a
        scalar tensor: 1 in value, the route of straight-through gradients to architecture
        weights) or taken as is when ``gate`` is None -- or a 1-D tensor of weights, one per
        pick: the weighted sum of every pick's output (a mixed op)."""
        ...


@runtime_checkable
class PerChoiceCosts(Protocol):
    """The blocks a supernet's picks add, so an additive cost (latency from a table, MACs,
    params) is known per choice: what a resource loss weighs (FBNet, SqueezeNAS)."""

    def choice_blocks(
        self, input_shape: Shape, num_classes: int
    ) -> tuple[list[Block], list[list[Block | None]]]:
        """The blocks every arch has, and per position and pick the block that pick adds
        (None: nothing, e.g. an identity). An arch's cost is the fixed blocks' plus its
        picks'."""
        ...


#: every capability and the adjective error messages use for it
CAPABILITIES: dict[type, str] = {
    Evolvable: "evolvable",
    Neighbourly: "neighbourly",
    Vectorizable: "vectorizable",
    Encodable: "encodable",
    Morphable: "morphable",
    BlockDecomposable: "block-decomposable",
    Supernet: "one-shot",
    PerChoiceCosts: "per-choice-costed",
}


# ------------------------------------------------------------------------ detection
F = TypeVar("F", bound=Callable[..., Any])


def unsupported(method: F) -> F:
    """Withdraw an inherited capability method: calling it raises NotImplementedError and
    :func:`supports` answers no (e.g. a subclass of an evolvable space whose archs cannot be
    crossed over)."""

    @functools.wraps(method)
    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        who = getattr(self, "name", type(self).__name__)
        raise NotImplementedError(f"space {who} does not support {method.__name__}")

    refuse.__hwnas_unsupported__ = True  # type: ignore[attr-defined]
    return refuse  # type: ignore[return-value]


def capability_methods(capability: type) -> list[str]:
    """The method names a capability protocol asks for, its bases' included."""
    names: list[str] = []
    for klass in capability.__mro__:
        if klass in (Protocol, object) or not getattr(klass, "_is_protocol", False):
            continue
        names += [n for n, v in vars(klass).items() if callable(v) and not n.startswith("_")]
    return names


def supports(space: object, capability: type) -> bool:
    """Whether ``space`` (an instance or a class) offers ``capability``: it has every method
    and none of them is marked :func:`unsupported`."""
    has = (
        issubclass(space, capability) if isinstance(space, type) else isinstance(space, capability)
    )
    return has and not any(
        getattr(getattr(space, name, None), "__hwnas_unsupported__", False)
        for name in capability_methods(capability)
    )


def spaces_with(capability: type, *also: type) -> list[str]:
    """The built-in space kinds whose class offers ``capability`` and every one of ``also``
    (for error messages)."""
    from hwnas.core.registry import spaces

    names = []
    for name in spaces.builtin_names():
        factory = spaces.entry(name).resolve()
        if isinstance(factory, type) and all(supports(factory, c) for c in (capability, *also)):
            names.append(name)
    return names


def missing(who: str, capability: type, space: object, *also: type) -> str:
    """The one-line complaint when ``who`` needs ``capability`` and ``space`` lacks it, e.g.
    ``strategy: nash needs a morphable space (space graph is one); space chain is not``."""
    label = CAPABILITIES.get(capability, capability.__name__)
    article = "an" if label[0] in "aeiou" and not label.startswith("one") else "a"
    offer = spaces_with(capability, *also)  # spaces that have all ``who`` needs
    if len(offer) == 1:
        hint = f" (space {offer[0]} is one)"
    elif offer:
        hint = f" (spaces {', '.join(offer)} are)"
    else:
        hint = ""
    name = getattr(space, "name", type(space).__name__)
    return f"{who} needs {article} {label} space{hint}; space {name} is not"
