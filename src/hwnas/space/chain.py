"""Chain-structured space: stem conv -> stages of MBConv blocks -> head (MobileNetV2 / FBNet).

Genotype (plain JSON)::

    {"stages": [{"depth": 2, "width": 24, "ops": ["k3_e6", "skip", "k5_e3"]}, ...]}

``ops`` always has one entry per possible block (the stage's largest depth), so every arch
has the same shape and crossover/encoding are positional. Only the first ``depth`` ops are
built, and ``skip`` builds nothing, so the canonical form keeps just the built (non-skip) ops
of each stage: archs that build the same network share one hash.
"""

from __future__ import annotations

import random
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hwnas.space.base import Arch, InvalidArch, Space
from hwnas.space.capabilities import Block, Shape
from hwnas.space.chain_blocks import ChainBlocks
from hwnas.space.config import ChainSpaceConfig
from hwnas.space.vocab.chain import SKIP, op_name, parse_op

if TYPE_CHECKING:
    from torch import nn


class ChainSpace(Space):
    """MBConv chain with per-stage depth/width choices and per-block op choices."""

    name = "chain"

    def __init__(self, cfg: ChainSpaceConfig | None = None) -> None:
        self.cfg = cfg or ChainSpaceConfig()
        self.mb_ops = [op_name(k, e) for k in self.cfg.kernels for e in self.cfg.expansions]
        self.max_depths = [max(s.depths) for s in self.cfg.stages]

    # ------------------------------------------------------------------ helpers
    def _in_channels(self, arch: Arch, stage: int) -> int:
        """Channels entering ``stage``: the last earlier stage that exists sets them."""
        for s in reversed(arch["stages"][:stage]):
            if s["depth"] > 0:
                return int(s["width"])
        return self.cfg.stem_channels

    def _skip_allowed(self, arch: Arch, stage: int, block: int) -> bool:
        """Identity needs equal shapes: not on a stage's first block if it strides or widens."""
        if not self.cfg.allow_skip:
            return False
        if block > 0:
            return True
        st = self.cfg.stages[stage]
        return st.stride == 1 and self._in_channels(arch, stage) == arch["stages"][stage]["width"]

    def _op_choices(self, arch: Arch, stage: int, block: int) -> list[str]:
        return self.mb_ops + ([SKIP] if self._skip_allowed(arch, stage, block) else [])

    def _repair(self, arch: Arch, rng: random.Random | None = None) -> Arch:
        """Replace skips that became illegal (after a width change) by a real op."""
        for i, _ in enumerate(self.cfg.stages):
            ops = arch["stages"][i]["ops"]
            if ops[0] == SKIP and not self._skip_allowed(arch, i, 0):
                ops[0] = rng.choice(self.mb_ops) if rng else self.mb_ops[0]
        return arch

    @staticmethod
    def _copy(arch: Arch) -> Arch:
        return {"stages": [{**s, "ops": list(s["ops"])} for s in arch["stages"]]}

    # --------------------------------------------------------------- interface
    def sample(self, rng: random.Random) -> Arch:
        arch: Arch = {"stages": []}
        for i, st in enumerate(self.cfg.stages):
            stage: dict[str, Any] = {
                "depth": rng.choice(st.depths),
                "width": rng.choice(st.widths),
                "ops": [],
            }
            arch["stages"].append(stage)
            stage["ops"] = [
                rng.choice(self._op_choices(arch, i, b)) for b in range(self.max_depths[i])
            ]
        return arch

    def _genes(self, arch: Arch) -> list[tuple[int, str, int]]:
        """Every mutable position: (stage, kind, block)."""
        genes: list[tuple[int, str, int]] = []
        for i, st in enumerate(self.cfg.stages):
            if len(st.depths) > 1:
                genes.append((i, "depth", -1))
            if len(st.widths) > 1:
                genes.append((i, "width", -1))
            genes += [(i, "op", b) for b in range(arch["stages"][i]["depth"])]
        return genes

    def _variants(self, arch: Arch, gene: tuple[int, str, int]) -> list[Arch]:
        i, kind, b = gene
        st = self.cfg.stages[i]
        out = []
        current = arch["stages"][i]
        if kind == "op":
            values: list[Any] = [o for o in self._op_choices(arch, i, b) if o != current["ops"][b]]
        else:
            choices = st.depths if kind == "depth" else st.widths
            values = [v for v in choices if v != current[kind]]
        for v in values:
            child = self._copy(arch)
            if kind == "op":
                child["stages"][i]["ops"][b] = v
            else:
                child["stages"][i][kind] = v
            out.append(self._repair(child))
        return out

    def parameters(self) -> dict[str, list[Any]]:
        ops = self.mb_ops + ([SKIP] if self.cfg.allow_skip else [])
        out: dict[str, list[Any]] = {}
        for i, st in enumerate(self.cfg.stages):
            out[f"s{i}.depth"] = list(st.depths)
            out[f"s{i}.width"] = list(st.widths)
            out.update({f"s{i}.op{b}": ops for b in range(self.max_depths[i])})
        return out

    def from_parameters(self, params: dict[str, Any]) -> Arch:
        arch: Arch = {
            "stages": [
                {
                    "depth": params[f"s{i}.depth"],
                    "width": params[f"s{i}.width"],
                    "ops": [params[f"s{i}.op{b}"] for b in range(self.max_depths[i])],
                }
                for i in range(len(self.cfg.stages))
            ]
        }
        return self._repair(arch)  # a skip where shapes change becomes the first real op

    def to_parameters(self, arch: Arch) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, s in enumerate(arch["stages"]):
            out[f"s{i}.depth"], out[f"s{i}.width"] = s["depth"], s["width"]
            out.update({f"s{i}.op{b}": op for b, op in enumerate(s["ops"])})
        return out

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        key = self.arch_hash(arch)
        genes = self._genes(arch)
        for _ in range(64):
            gene = rng.choice(genes)
            variants = self._variants(arch, gene)
            if not variants:
                continue
            child = rng.choice(variants)
            # a width change may have made a skip illegal: repair with the rng for variety
            child = self._repair(child, rng)
            if self.arch_hash(child) != key:
                return child
        # tiny spaces: fall back to any different neighbour, else a fresh sample
        neigh = self.neighbours(arch)
        return rng.choice(neigh) if neigh else self.sample(rng)

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        child = {
            "stages": [self._copy(rng.choice((a, b)))["stages"][i] for i in range(len(a["stages"]))]
        }
        return self._repair(child, rng)

    def neighbours(self, arch: Arch) -> list[Arch]:
        seen = {self.arch_hash(arch)}
        out = []
        for gene in self._genes(arch):
            for child in self._variants(arch, gene):
                h = self.arch_hash(child)
                if h not in seen:
                    seen.add(h)
                    out.append(child)
        return out

    def canonical(self, arch: Arch) -> Arch:
        """The built ops of each stage and its output width (its input's, if nothing is built)."""
        self.validate(arch)
        stages = []
        c = self.cfg.stem_channels
        for s in arch["stages"]:
            ops = [o for o in s["ops"][: s["depth"]] if o != SKIP]
            c = s["width"] if ops else c
            stages.append({"width": c, "ops": ops})
        return {"stages": stages}

    def encode(self, arch: Arch) -> list[float]:
        kmax, emax = max(self.cfg.kernels), max(self.cfg.expansions)
        vec: list[float] = []
        for i, st in enumerate(self.cfg.stages):
            s = arch["stages"][i]
            vec += [s["depth"] / max(max(st.depths), 1), s["width"] / max(st.widths)]
            for b in range(self.max_depths[i]):
                op = s["ops"][b]
                if b >= s["depth"] or op == SKIP:
                    vec += [0.0, 0.0]
                else:
                    k, e = parse_op(op)
                    vec += [k / kmax, e / emax]
        return vec

    def validate(self, arch: Arch) -> None:
        if not isinstance(arch, dict) or not isinstance(arch.get("stages"), list):
            raise InvalidArch("chain arch must be {'stages': [...]}")
        if len(arch["stages"]) != len(self.cfg.stages):
            raise InvalidArch(f"chain arch needs {len(self.cfg.stages)} stages")
        for i, (s, st) in enumerate(zip(arch["stages"], self.cfg.stages, strict=True)):
            if not isinstance(s, dict) or set(s) != {"depth", "width", "ops"}:
                raise InvalidArch(f"stage {i}: needs exactly depth, width, ops")
            if s["depth"] not in st.depths:
                raise InvalidArch(f"stage {i}: depth {s['depth']} not in {st.depths}")
            if s["width"] not in st.widths:
                raise InvalidArch(f"stage {i}: width {s['width']} not in {st.widths}")
            if not isinstance(s["ops"], list) or len(s["ops"]) != self.max_depths[i]:
                raise InvalidArch(f"stage {i}: ops must list {self.max_depths[i]} entries")
            for b, op in enumerate(s["ops"]):
                if op == SKIP:
                    if not self._skip_allowed(arch, i, b):
                        raise InvalidArch(f"stage {i} block {b}: skip not allowed here")
                elif op not in self.mb_ops:
                    raise InvalidArch(f"stage {i} block {b}: unknown op {op!r}")

    @cached_property
    def _size(self) -> int:
        m = len(self.mb_ops)
        # distinct built sequences per stage, by (input width, output width)
        skip = self.cfg.allow_skip
        counts = {self.cfg.stem_channels: 1}
        for st in self.cfg.stages:
            nxt: dict[int, int] = {}
            built = [d for d in st.depths if d > 0]
            for cin, n in counts.items():
                # nothing built (depth 0, or every op skipped): one network, channels unchanged
                if 0 in st.depths or (skip and built and st.stride == 1 and cin in st.widths):
                    nxt[cin] = nxt.get(cin, 0) + n
                for w in st.widths:
                    lengths: set[int] = set()
                    for d in built:
                        lengths.update(range(1, d + 1) if skip else [d])
                    seqs = sum(m**length for length in lengths)
                    nxt[w] = nxt.get(w, 0) + n * seqs
            counts = nxt
        return sum(counts.values())

    def size(self) -> int:
        return self._size

    def describe(self, arch: Arch) -> str:
        parts = [f"stem{self.cfg.stem_channels}"]
        for s in self.canonical(arch)["stages"]:
            ops = ",".join(o.replace("_", "") for o in s["ops"]) or "id"
            parts.append(f"{s['width']}x{len(s['ops'])}[{ops}]")
        return " ".join(parts)

    # ----------------------------------------------------- block decomposition
    @cached_property
    def _block_plan(self) -> ChainBlocks:
        return ChainBlocks(self)

    def blocks_id(self) -> str:
        return self._block_plan.blocks_id()

    def blocks(self, arch: Arch, input_shape: Shape, num_classes: int) -> list[Block]:
        """Stem, each built MBConv in its context, head: ChainNet's modules, in order."""
        return self._block_plan.blocks(arch, input_shape, num_classes)

    def all_blocks(self, input_shape: Shape, num_classes: int) -> list[Block]:
        return self._block_plan.all_blocks(input_shape, num_classes)

    # ------------------------------------------------------------ supernet
    # One-shot search covers a sub-space: every stage at one width (``supernet_widths``, by
    # default its widest) and its deepest depth, each block position choosing an MBConv op or
    # skip where the shape allows it -- so depth is searched, widths are not.
    @cached_property
    def sub_widths(self) -> list[int]:
        return list(self.cfg.supernet_widths) or [max(s.widths) for s in self.cfg.stages]

    def positions(self) -> list[tuple[int, int]]:
        """(stage, block) of every supernet position, in network order."""
        return [(i, b) for i, d in enumerate(self.max_depths) for b in range(d)]

    def _sub_arch(self, ops: list[list[str]]) -> Arch:
        return {
            "stages": [
                {"depth": d, "width": w, "ops": o}
                for d, w, o in zip(self.max_depths, self.sub_widths, ops, strict=True)
            ]
        }

    @cached_property
    def _choices(self) -> list[list[str]]:
        """Per position its ops; fixed for the space, and asked for at every pick conversion
        (a path space's neighbours convert dozens per arch)."""
        probe = self._sub_arch([[self.mb_ops[0]] * d for d in self.max_depths])
        return [self._op_choices(probe, i, b) for i, b in self.positions()]

    def choices(self) -> list[list[str]]:
        return [list(c) for c in self._choices]

    def from_choices(self, picks: list[int]) -> Arch:
        names = [c[k] for c, k in zip(self._choices, picks, strict=True)]
        ops: list[list[str]] = [[] for _ in self.max_depths]
        for (i, _), name in zip(self.positions(), names, strict=True):
            ops[i].append(name)
        return self._sub_arch(ops)

    def to_choices(self, arch: Arch) -> list[int]:
        """The picks of an arch of the sub-space; an arch that builds the same network as one
        (a shallower stage, skips elsewhere) maps to its skips-last form."""
        self.validate(arch)
        choices = self._choices
        if all(
            s["depth"] == d and s["width"] == w
            for s, d, w in zip(arch["stages"], self.max_depths, self.sub_widths, strict=True)
        ):
            names = [op for s in arch["stages"] for op in s["ops"]]
        else:
            names = []
            for s, d in zip(self.canonical(arch)["stages"], self.max_depths, strict=True):
                names += s["ops"] + [SKIP] * (d - len(s["ops"]))
        picks = [c.index(n) if n in c else -1 for c, n in zip(choices, names, strict=True)]
        if -1 in picks or self.canonical(self.from_choices(picks)) != self.canonical(arch):
            raise InvalidArch(
                f"chain arch outside the supernet's sub-space (stage widths {self.sub_widths}, "
                "depth by skips): " + self.describe(arch)
            )
        return picks

    def choice_blocks(
        self, input_shape: Shape, num_classes: int
    ) -> tuple[list[Block], list[list[Block | None]]]:
        return self._block_plan.choice_blocks(input_shape, num_classes)

    def supernet(self, input_shape: Shape, num_classes: int) -> nn.Module:
        from hwnas.space.blocks import ChainSupernet

        return ChainSupernet(self, input_shape, num_classes)

    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from hwnas.space.blocks import ChainNet

        self.validate(arch)
        return ChainNet(self.cfg, self.canonical(arch), input_shape, num_classes)
