"""``example-convs``: a plain chain of 1-4 conv-BN-ReLU layers, searched layer by layer.

Genotype (plain JSON, the same shape for every arch so crossover and encoding are
positional)::

    {"depth": 2, "widths": [16, 8, 32, 24], "kernels": [3, 5, 5, 3]}

``widths`` and ``kernels`` have one entry per possible layer; only the first ``depth`` are
built, so :meth:`ConvChainSpace.canonical` keeps just those: archs that build the same network
share one ``arch_hash``, and a mutation only ever changes a built choice.
"""

from __future__ import annotations

import random
from typing import Any

from torch import nn

from hwnas.space.base import Arch, InvalidArch, Space
from hwnas_example_plugin.convs_config import ExampleConvsConfig

#: a mutable position of an arch: ("depth", 0), ("widths", layer) or ("kernels", layer)
Gene = tuple[str, int]


class ConvChainSpace(Space):
    """Plain conv chains; the factory of the ``example-convs`` kind (called with its section)."""

    name = "example-convs"

    def __init__(self, cfg: ExampleConvsConfig | None = None) -> None:
        self.cfg = cfg or ExampleConvsConfig()
        self.max_depth = max(self.cfg.depths)
        self._choices = {
            "depth": self.cfg.depths,
            "widths": self.cfg.widths,
            "kernels": self.cfg.kernels,
        }

    # ------------------------------------------------------------------ genes
    def _genes(self, arch: Arch) -> list[Gene]:
        """Positions whose change changes the built network: depth, and built layers only."""
        genes: list[Gene] = [("depth", 0)] if len(self.cfg.depths) > 1 else []
        for key in ("widths", "kernels"):
            if len(self._choices[key]) > 1:
                genes += [(key, i) for i in range(arch["depth"])]
        return genes

    @staticmethod
    def _get(arch: Arch, gene: Gene) -> int:
        key, i = gene
        return int(arch["depth"]) if key == "depth" else int(arch[key][i])

    @staticmethod
    def _with(arch: Arch, gene: Gene, value: int) -> Arch:
        key, i = gene
        child = {
            "depth": arch["depth"],
            "widths": list(arch["widths"]),
            "kernels": list(arch["kernels"]),
        }
        if key == "depth":
            child["depth"] = value
        else:
            child[key][i] = value
        return child

    def _others(self, arch: Arch, gene: Gene) -> list[int]:
        return [v for v in self._choices[gene[0]] if v != self._get(arch, gene)]

    # --------------------------------------------------------------- interface
    def sample(self, rng: random.Random) -> Arch:
        return {
            "depth": rng.choice(self.cfg.depths),
            "widths": [rng.choice(self.cfg.widths) for _ in range(self.max_depth)],
            "kernels": [rng.choice(self.cfg.kernels) for _ in range(self.max_depth)],
        }

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        # one built choice changes to another value: the child always builds another network
        # (the config refuses a space of one network, so there is always a gene to change)
        self.validate(arch)
        gene = rng.choice(self._genes(arch))
        return self._with(arch, gene, rng.choice(self._others(arch, gene)))

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        return {
            "depth": rng.choice((a, b))["depth"],
            "widths": [rng.choice((a, b))["widths"][i] for i in range(self.max_depth)],
            "kernels": [rng.choice((a, b))["kernels"][i] for i in range(self.max_depth)],
        }

    def neighbours(self, arch: Arch) -> list[Arch]:
        seen = {self.arch_hash(arch)}
        out = []
        for gene in self._genes(arch):
            for value in self._others(arch, gene):
                child = self._with(arch, gene, value)
                h = self.arch_hash(child)
                if h not in seen:
                    seen.add(h)
                    out.append(child)
        return out

    def encode(self, arch: Arch) -> list[float]:
        wmax, kmax = max(self.cfg.widths), max(self.cfg.kernels)
        vec = [arch["depth"] / self.max_depth]
        for i in range(self.max_depth):
            built = i < arch["depth"]
            vec += [arch["widths"][i] / wmax, arch["kernels"][i] / kmax] if built else [0.0, 0.0]
        return vec

    def canonical(self, arch: Arch) -> Arch:
        """The built layers as ``[width, kernel]`` pairs; unbuilt slots are dropped."""
        self.validate(arch)
        n = arch["depth"]
        layers = zip(arch["widths"][:n], arch["kernels"][:n], strict=True)
        return {"layers": [[w, k] for w, k in layers]}

    def size(self) -> int:
        per_layer = len(self.cfg.widths) * len(self.cfg.kernels)
        return sum(per_layer**d for d in self.cfg.depths)

    def validate(self, arch: Arch) -> None:
        if not isinstance(arch, dict) or set(arch) != {"depth", "widths", "kernels"}:
            raise InvalidArch("example-convs arch must set exactly: depth, widths, kernels")
        if arch["depth"] not in self.cfg.depths:
            raise InvalidArch(f"depth {arch['depth']!r} is not one of {self.cfg.depths}")
        for key in ("widths", "kernels"):
            values = arch[key]
            if not isinstance(values, list) or len(values) != self.max_depth:
                raise InvalidArch(f"{key} must list {self.max_depth} values")
            bad = [v for v in values if v not in self._choices[key]]
            if bad:
                raise InvalidArch(f"{key}: {bad[0]!r} is not one of {self._choices[key]}")

    def describe(self, arch: Arch) -> str:
        return " ".join(f"conv{w}k{k}" for w, k in self.canonical(arch)["layers"])

    def parameters(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"depth": list(self.cfg.depths)}
        for i in range(self.max_depth):
            out[f"width{i}"] = list(self.cfg.widths)
            out[f"kernel{i}"] = list(self.cfg.kernels)
        return out

    def from_parameters(self, params: dict[str, Any]) -> Arch:
        arch = {
            "depth": params["depth"],
            "widths": [params[f"width{i}"] for i in range(self.max_depth)],
            "kernels": [params[f"kernel{i}"] for i in range(self.max_depth)],
        }
        self.validate(arch)
        return arch

    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        layers: list[nn.Module] = []
        cin = input_shape[0]
        for i, (w, k) in enumerate(self.canonical(arch)["layers"]):
            stride = self.cfg.first_stride if i == 0 else 1
            layers += [
                nn.Conv2d(cin, w, k, stride=stride, padding=k // 2, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
            cin = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
        return nn.Sequential(*layers)
