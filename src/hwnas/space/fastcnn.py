"""The fast-CNN space: the macro of the fastest hand-designed CIFAR-10 nets, opened up.

Genotype (plain JSON)::

    {"act": "gelu", "groups": [{"width": 64, "depth": 2, "kernel": 3, "residual": false}, ...]}

A group may also say ``"pool": "before"`` (its max-pool before its first conv instead of
after it; absent means ``"after"``, airbench's order) and ``"grouped": G`` (its convs after
the first split their channels into G groups: 1/G of their MACs and weights, while the first
conv stays dense so channels still mix once per group; absent means 1). The canonical form
leaves defaults out, so archs written before a gene existed keep their identity.

A whitening stem (fixed, set from the data), then one conv group per entry of ``groups``
(each halves the resolution), a global max-pool and a bias-free linear head. With the default
choices the space holds the two reference nets by name (:data:`REFERENCE_NETS`): airbench94
(Jordan 2024: groups of 64, 256, 256 channels, two convs each) and airbench96 (128, 384, 512,
three convs each with a residual add around the second and third). A search can therefore
return the reference itself, and every comparison runs through the same code.
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING, Any

from hwnas.space.base import Arch, InvalidArch, Space
from hwnas.space.config import FastCnnSpaceConfig

if TYPE_CHECKING:
    from torch import nn


def _groups(spec: list[tuple[int, int, bool]]) -> list[dict[str, Any]]:
    return [{"width": w, "depth": d, "kernel": 3, "residual": r} for w, d, r in spec]


#: the hand-designed fast nets, as archs of the default fast-CNN space
REFERENCE_NETS: dict[str, Arch] = {
    "airbench94": {
        "act": "gelu",
        "groups": _groups([(64, 2, False), (256, 2, False), (256, 2, False)]),
    },
    "airbench96": {
        "act": "gelu",
        "groups": _groups([(128, 3, True), (384, 3, True), (512, 3, True)]),
    },
}

_GENES = ("width", "depth", "kernel", "residual")
#: genes a group may leave out, with the value that absence means
_DEFAULTS: dict[str, Any] = {"pool": "after", "grouped": 1}


class FastCnnSpace(Space):
    """Per group: width, depth, kernel and residual; one activation for the whole net."""

    name = "fastcnn"
    fast_recipe = True  # airbench's macro: what the fast recipe was measured on

    def __init__(self, cfg: FastCnnSpaceConfig | None = None) -> None:
        self.cfg = cfg or FastCnnSpaceConfig()

    def _choices(self, i: int) -> dict[str, list[Any]]:
        g = self.cfg.groups[i]
        return {
            "width": g.widths,
            "depth": g.depths,
            "kernel": g.kernels,
            "residual": g.residual,
            "pool": g.pools,
            "grouped": g.grouped,
        }

    @staticmethod
    def _gene(g: dict[str, Any], gene: str) -> Any:
        return g[gene] if gene in g else _DEFAULTS[gene]

    # ------------------------------------------------------------------ basics
    def sample(self, rng: random.Random) -> Arch:
        groups = []
        for i in range(len(self.cfg.groups)):
            c = self._choices(i)  # an optional gene the space fixes draws nothing: same archs
            groups.append({k: rng.choice(c[k]) for k in self._parameter_genes(i)})
        return {"act": rng.choice(self.cfg.activations), "groups": groups}

    def canonical(self, arch: Arch) -> Arch:
        self.validate(arch)
        groups = []
        for g in arch["groups"]:
            c = {k: g[k] for k in _GENES}
            c["residual"] = bool(g["residual"]) and g["depth"] > 1
            if g["depth"] == 1:  # no conv after the first: nothing to split
                g = {k: v for k, v in g.items() if k != "grouped"}
            c.update({k: g[k] for k, v in _DEFAULTS.items() if g.get(k, v) != v})
            groups.append(c)
        return {"act": arch["act"], "groups": groups}

    def size(self) -> int:
        n = len(self.cfg.activations)
        for i in range(len(self.cfg.groups)):
            c = self._choices(i)
            shapes = {
                (w, d, bool(r) and d > 1, s if d > 1 else 1)
                for w, d, r, s in itertools.product(
                    c["width"], c["depth"], c["residual"], c["grouped"]
                )
                if d == 1 or w % s == 0
            }
            n *= len(shapes) * len(c["kernel"]) * len(c["pool"])
        return n

    def validate(self, arch: Arch) -> None:
        if not isinstance(arch, dict) or set(arch) != {"act", "groups"}:
            raise InvalidArch("fastcnn arch must be {'act': ..., 'groups': [...]}")
        if arch["act"] not in self.cfg.activations:
            raise InvalidArch(f"fastcnn act {arch['act']!r} not in {self.cfg.activations}")
        groups = arch["groups"]
        if not isinstance(groups, list) or len(groups) != len(self.cfg.groups):
            raise InvalidArch(f"fastcnn arch needs {len(self.cfg.groups)} groups")
        for i, g in enumerate(groups):
            if not isinstance(g, dict) or not set(_GENES) <= set(g) <= {*_GENES, *_DEFAULTS}:
                raise InvalidArch(
                    f"fastcnn group {i} must have keys {list(_GENES)} (optional: {list(_DEFAULTS)})"
                )
            for gene, allowed in self._choices(i).items():
                v = self._gene(g, gene)
                if gene == "grouped" and g["depth"] == 1:
                    continue  # no conv to split: canonical drops the gene, any value builds
                if v not in allowed or isinstance(v, bool) != (gene == "residual"):
                    raise InvalidArch(f"fastcnn group {i} {gene} {v!r} not in {allowed}")
            if g["depth"] > 1 and g["width"] % self._gene(g, "grouped"):
                raise InvalidArch(
                    f"fastcnn group {i} width {g['width']} does not split into "
                    f"{self._gene(g, 'grouped')} groups"
                )

    def describe(self, arch: Arch) -> str:
        parts = []
        for g in arch["groups"]:
            k = "" if g["kernel"] == 3 else f"k{g['kernel']}"
            r = "r" if g["residual"] and g["depth"] > 1 else ""
            p = "p" if self._gene(g, "pool") == "before" else ""  # pooled first
            s = self._gene(g, "grouped")
            s = f"g{s}" if s > 1 and g["depth"] > 1 else ""
            parts.append(f"{p}{g['width']}x{g['depth']}{k}{s}{r}")
        return f"fastcnn {arch['act']} " + "-".join(parts)

    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from hwnas.space.fastcnn_modules import FastCnn, min_input_side

        self.validate(arch)
        c, h, w = input_shape
        least = min_input_side(self.cfg.whiten_kernel, len(self.cfg.groups))
        if min(h, w) < least:
            raise InvalidArch(
                f"fastcnn needs inputs of at least {least}x{least} pixels, got {c}x{h}x{w}"
            )
        return FastCnn(
            c,
            num_classes,
            [{**_DEFAULTS, **g} for g in arch["groups"]],  # every gene spelled out
            arch["act"],
            self.cfg.whiten_kernel,
            self.cfg.logit_scale,
        )

    # ------------------------------------------------------------ capabilities
    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """One gene of one group (or the activation) changed so the built net changes."""
        base = self.canonical(arch)
        h = self.arch_hash(base)
        options = self.neighbours(base)
        if not options:
            return base
        child = rng.choice(options)
        assert self.arch_hash(child) != h
        return child

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        groups = [dict(rng.choice(pair)) for pair in zip(a["groups"], b["groups"], strict=True)]
        return {"act": rng.choice([a["act"], b["act"]]), "groups": groups}

    def neighbours(self, arch: Arch) -> list[Arch]:
        base = self.canonical(arch)
        seen = {self.arch_hash(base)}
        out = []
        candidates = [{**base, "act": a} for a in self.cfg.activations if a != base["act"]]
        for i, g in enumerate(base["groups"]):
            for gene, allowed in self._choices(i).items():
                for v in allowed:
                    if v == self._gene(g, gene):
                        continue
                    groups = [dict(x) for x in base["groups"]]
                    groups[i][gene] = v
                    split = self._choices(i)["grouped"]
                    if groups[i]["depth"] > 1 and self._gene(groups[i], "grouped") not in split:
                        groups[i]["grouped"] = split[0]  # deepened: its new convs split as offered
                    candidates.append({"act": base["act"], "groups": groups})
        for cand in candidates:
            h = self.arch_hash(cand)
            if h not in seen:
                seen.add(h)
                out.append(cand)
        return out

    def _parameter_genes(self, i: int) -> list[str]:
        """The genes of group ``i`` that are parameters: an optional gene only where the space
        offers more than its default, so a BO or Optuna study made before the gene existed
        resumes with the same parameters."""
        c = self._choices(i)
        return [*_GENES, *(k for k, v in _DEFAULTS.items() if c[k] != [v])]

    def parameters(self) -> dict[str, list[Any]]:
        params: dict[str, list[Any]] = {"act": list(self.cfg.activations)}
        for i in range(len(self.cfg.groups)):
            choices = self._choices(i)
            for gene in self._parameter_genes(i):
                params[f"g{i}.{gene}"] = list(choices[gene])
        return params

    def from_parameters(self, params: dict[str, Any]) -> Arch:
        groups = []
        for i in range(len(self.cfg.groups)):
            g = {gene: params[f"g{i}.{gene}"] for gene in _GENES}
            for k, v in _DEFAULTS.items():
                if params.get(f"g{i}.{k}", v) != v:
                    g[k] = params[f"g{i}.{k}"]
            groups.append(g)
        return {"act": params["act"], "groups": groups}

    def to_parameters(self, arch: Arch) -> dict[str, Any]:
        out: dict[str, Any] = {"act": arch["act"]}
        for i, g in enumerate(arch["groups"]):
            for gene in self._parameter_genes(i):
                v = self._gene(g, gene)
                if gene == "grouped" and g["depth"] == 1:  # splits nothing: any offered value
                    v = v if v in self._choices(i)[gene] else self._choices(i)[gene][0]
                out[f"g{i}.{gene}"] = v
        return out

    def encode(self, arch: Arch) -> list[float]:
        """Per group: width, depth and kernel scaled to [0, 1] of their ranges, residual 0/1,
        pool-first 0/1 and the split of the later convs scaled to [0, 1] (each only where the
        space offers more than one choice, so encodings saved before a gene existed keep their
        length); then the activation one-hot."""
        base = self.canonical(arch)
        vec: list[float] = []
        for i, g in enumerate(base["groups"]):
            for gene, allowed in self._choices(i).items():
                if gene == "residual":
                    vec.append(float(g[gene]))
                    continue
                if gene == "pool":
                    if len(allowed) > 1:
                        vec.append(float(self._gene(g, gene) == "before"))
                    continue
                if gene == "grouped":
                    if len(allowed) > 1:
                        lo, hi = min(allowed), max(allowed)
                        v = self._gene(g, gene) if g["depth"] > 1 else lo  # nothing split
                        vec.append((v - lo) / (hi - lo))
                    continue
                lo, hi = min(allowed), max(allowed)
                vec.append((g[gene] - lo) / (hi - lo) if hi > lo else 0.0)
        vec += [float(base["act"] == a) for a in self.cfg.activations]
        return vec


def reference_arch(name: str) -> Arch:
    """A reference net by name (``airbench94``, ``airbench96``)."""
    try:
        return REFERENCE_NETS[name]
    except KeyError:
        raise InvalidArch(
            f"unknown reference net {name!r}; known: {', '.join(REFERENCE_NETS)}"
        ) from None
