"""Multi-branch CNNs as DAGs, grown by function-preserving network morphisms (NASH).

An arch is a list of nodes in topological order; node 0 is the input image and the last node
feeds global average pooling and the classifier. Kinds:

- ``conv``: conv(k x k, ``c`` channels) -> BN -> ReLU on one input (so its output is >= 0);
- ``pool``: 2x2 max pooling (the only change of resolution; morphisms never add one);
- ``add``: ``in[0] + proj(in[1])`` with a 1x1 conv ``proj`` (lets a skip join any width);
- ``concat``: channel concatenation.

Node ids are stable across morphisms, so trained weights (keyed by id) follow a node when the
graph around it changes. The three NASH morphisms (Elsken et al., 2017) change an arch *and*
its weights so that the network computes the same function (eval mode):

1. ``deeper``: insert conv-BN-ReLU after a node whose output is >= 0, initialised to the
   identity (Dirac kernel, BN that passes values through; ReLU is then the identity too);
2. ``wider``: widen a conv to ``c`` channels, new units copying old ones (Net2Net); every
   consumer's weights on the copies of a unit are split by random positive shares that sum to
   one, so the function is kept and the copies are not trained in lock-step;
3. ``skip``: join an earlier node ``a`` into node ``b`` of the same resolution, by addition
   (the new 1x1 branch starts at zero) or by concatenation (consumers get zero weights on the
   new channels).

A widened or concatenated output changes the channels every downstream consumer sees; the
change is propagated through pools, concats and adds to the first convs / the classifier, whose
input weights absorb it. ``scale`` (joint scaling) is a macro: every level grows by
``ceil(d * depth) - d`` identity layers and every conv to ``ceil(c * width)`` channels.
"""

from __future__ import annotations

import copy
import math
import random
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.space.base import Arch, InvalidArch, Space
from hwnas.space.vocab.graph import BN_EPS, Graph, Morph, initial_arch

if TYPE_CHECKING:
    from torch import Tensor, nn

    from hwnas.space.config import GraphSpaceConfig

State = dict[str, "Tensor"]


# -------------------------------------------------------------- weight propagation
def _mapping_identity(c: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(c), np.ones(c)


def _cols(w: Tensor, g: np.ndarray, share: np.ndarray) -> Tensor:
    """Input-channel (dim 1) weights for a consumer whose input became (g, share)."""
    import torch

    idx = torch.as_tensor(np.maximum(g, 0), dtype=torch.long)
    scale = torch.as_tensor(np.where(g >= 0, share, 0.0), dtype=w.dtype)
    shape = [1, -1] + [1] * (w.dim() - 2)
    return w.index_select(1, idx) * scale.view(shape)


def _rows(w: Tensor, g: np.ndarray) -> Tensor:
    """Output-channel (dim 0) weights copied per g (zero rows for g == -1)."""
    import torch

    idx = torch.as_tensor(np.maximum(g, 0), dtype=torch.long)
    keep = torch.as_tensor(g >= 0, dtype=w.dtype).view([-1] + [1] * (w.dim() - 1))
    return w.index_select(0, idx) * keep


def _propagate(
    graph: Graph, state: State, maps: dict[int, tuple[np.ndarray, np.ndarray]], start: int
) -> None:
    """Let every node after ``start`` absorb the channel mappings in ``maps`` (in place)."""
    for n in graph.nodes[graph.order[start] :]:
        i, ins = n["id"], n["in"]
        if i == start:
            continue
        op = n["op"]
        if op == "conv" and ins[0] in maps:
            key = f"layers.n{i}.conv.weight"
            state[key] = _cols(state[key], *maps[ins[0]])
        elif op == "pool" and ins[0] in maps:
            maps[i] = maps[ins[0]]
        elif op == "concat" and any(j in maps for j in ins):
            parts = []
            offset = 0
            for j in ins:
                if j in maps:
                    g, s = maps[j]
                    old_c = int(g.max()) + 1  # mappings always keep the old channels first
                else:
                    g, s = _mapping_identity(graph.channels[j])
                    old_c = graph.channels[j]
                parts.append((np.where(g >= 0, g + offset, -1), s))
                offset += old_c
            maps[i] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        elif op == "add":
            key = f"layers.n{i}.proj.weight"
            if ins[0] in maps:
                state[key] = _rows(state[key], maps[ins[0]][0])
                maps[i] = maps[ins[0]]
            if ins[1] in maps:
                state[key] = _cols(state[key], *maps[ins[1]])
    if graph.output in maps:
        state["head.weight"] = _cols(state["head.weight"], *maps[graph.output])


# ------------------------------------------------------------------------ morphisms
def _rewire(nodes: list[dict[str, Any]], old: int, new: int, skip: int) -> None:
    """Every consumer of ``old`` (except node ``skip``) reads ``new`` instead."""
    for n in nodes:
        if n["id"] != skip:
            n["in"] = [new if j == old else j for j in n["in"]]


def _insert_after(nodes: list[dict[str, Any]], after: int, node: dict[str, Any]) -> None:
    pos = next(p for p, n in enumerate(nodes) if n["id"] == after) + 1
    nodes.insert(pos, node)


def _deeper(arch: Arch, m: Morph, state: State | None) -> None:
    nid, after, k = arch["next_id"], m["node"], m["k"]
    graph = Graph(arch)
    c = graph.channels[after]
    _rewire(arch["nodes"], after, nid, skip=-1)
    _insert_after(arch["nodes"], after, {"id": nid, "op": "conv", "in": [after], "k": k, "c": c})
    arch["next_id"] = nid + 1
    if state is not None:
        import torch

        w = torch.zeros(c, c, k, k)
        w[torch.arange(c), torch.arange(c), k // 2, k // 2] = 1.0
        p = f"layers.n{nid}."
        state[p + "conv.weight"] = w
        state[p + "bn.weight"] = torch.full((c,), math.sqrt(1.0 + BN_EPS))
        state[p + "bn.bias"] = torch.zeros(c)
        state[p + "bn.running_mean"] = torch.zeros(c)
        state[p + "bn.running_var"] = torch.ones(c)
        state[p + "bn.num_batches_tracked"] = torch.tensor(0)


def _widen_map(c: int, new_c: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    g = np.concatenate([np.arange(c), np.array([rng.randrange(c) for _ in range(new_c - c)])])
    raw = np.array([rng.uniform(0.5, 1.5) for _ in range(new_c)])
    share = np.empty(new_c)
    for u in range(c):
        copies = np.nonzero(g == u)[0]
        share[copies] = raw[copies] / raw[copies].sum()
    return g.astype(np.int64), share


def _wider(arch: Arch, m: Morph, state: State | None) -> None:
    node = next(n for n in arch["nodes"] if n["id"] == m["node"])
    c, new_c = int(node["c"]), int(m["c"])
    node["c"] = new_c
    if state is None:
        return
    g, share = _widen_map(c, new_c, random.Random(m["seed"]))
    p = f"layers.n{m['node']}."
    for key in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
        state[p + key] = _rows(state[p + key], g)
    _propagate(Graph(arch), state, {m["node"]: (g, share)}, m["node"])


def _skip(arch: Arch, m: Morph, state: State | None, in_channels: int) -> None:
    nid, a, b = arch["next_id"], m["from"], m["to"]
    graph = Graph(arch, in_channels)
    ca, cb = graph.channels[a], graph.channels[b]
    _rewire(arch["nodes"], b, nid, skip=-1)
    op = "add" if m["join"] == "add" else "concat"
    _insert_after(arch["nodes"], b, {"id": nid, "op": op, "in": [b, a]})
    arch["next_id"] = nid + 1
    if state is None:
        return
    import torch

    if op == "add":
        state[f"layers.n{nid}.proj.weight"] = torch.zeros(cb, ca, 1, 1)
    else:
        g = np.concatenate([np.arange(cb), -np.ones(ca, dtype=np.int64)])
        share = np.concatenate([np.ones(cb), np.zeros(ca)])
        _propagate(Graph(arch, in_channels), state, {nid: (g, share)}, nid)


def _scale(arch: Arch, m: Morph, in_channels: int) -> list[Morph]:
    """Expand a joint-scaling step into primitive morphs (depth and width grow together).

    Growth stops at the caps the morph carries (``max_channels``, ``max_layers``,
    ``max_nodes``); an empty list means nothing can grow.
    """
    rng = random.Random(m["seed"])
    graph = Graph(arch, in_channels)
    out: list[Morph] = []
    max_c = int(m.get("max_channels", 1 << 30))
    room = min(
        int(m.get("max_layers", 1 << 30)) - len(graph.convs()),
        int(m.get("max_nodes", 1 << 30)) - len(graph.nodes),
    )
    by_level: dict[int, list[int]] = {}
    for n in graph.convs():
        by_level.setdefault(graph.level[n["id"]], []).append(n["id"])
    for convs in by_level.values():
        extra = min(math.ceil(len(convs) * m["depth"] - 1e-9) - len(convs), max(room, 0))
        room -= extra
        for _ in range(extra):
            after = rng.choice(convs)
            out.append({"kind": "deeper", "node": after, "k": 3})
    for n in graph.convs():
        new_c = min(math.ceil(int(n["c"]) * m["width"] - 1e-9), max_c)
        if new_c > int(n["c"]):
            out.append({"kind": "wider", "node": n["id"], "c": new_c, "seed": rng.randrange(2**31)})
    return out


def apply_morph(
    arch: Arch, morph: Morph, state: State | None = None, in_channels: int = 3
) -> tuple[Arch, State | None]:
    """The child arch (and its function-preserving weights, when ``state`` is given)."""
    arch = copy.deepcopy(arch)
    state = dict(state) if state is not None else None
    kind = morph["kind"]
    if kind == "scale":
        for sub in _scale(arch, morph, in_channels):
            arch, state = apply_morph(arch, sub, state, in_channels)
        return arch, state
    if kind == "deeper":
        _deeper(arch, morph, state)
    elif kind == "wider":
        _wider(arch, morph, state)
    elif kind == "skip":
        _skip(arch, morph, state, in_channels)
    else:
        raise InvalidArch(f"graph: unknown morphism {kind!r}")
    return arch, state


# ----------------------------------------------------------------------------- space
class GraphSpace(Space):
    """DAG CNNs reachable from a small start net by NASH morphisms."""

    name = "graph"

    def __init__(self, cfg: GraphSpaceConfig) -> None:
        self.cfg = cfg
        self.start = initial_arch(list(cfg.channels), cfg.depth, cfg.kernel)

    # -- morphism choice
    def options(self, arch: Arch, kind: str) -> list[Morph]:
        """Every eligible morphism of one kind (widening seeds are filled in by the caller)."""
        graph = Graph(arch)
        convs = graph.convs()
        cfg = self.cfg
        if kind == "deeper":
            if len(convs) >= cfg.max_layers:
                return []
            return [
                {"kind": "deeper", "node": n["id"], "k": k}
                for n in graph.nodes
                if graph.nonneg[n["id"]]
                for k in cfg.deeper_kernels
            ]
        if kind == "wider":
            return [
                {"kind": "wider", "node": n["id"], "c": int(n["c"]) * f}
                for n in convs
                for f in cfg.widen_factors
                if int(n["c"]) * f <= cfg.max_channels
            ]
        if kind == "skip":
            if len(graph.nodes) >= cfg.max_nodes:
                return []
            out = []
            for b in graph.nodes:
                for a in graph.nodes:
                    if (
                        graph.order[a["id"]] >= graph.order[b["id"]]
                        or a["id"] in b["in"]
                        or graph.level[a["id"]] != graph.level[b["id"]]
                    ):
                        continue
                    for join in cfg.skip_joins:
                        width = graph.channels[b["id"]] + graph.channels[a["id"]]
                        if join == "concat" and width > cfg.max_channels:
                            continue
                        out.append({"kind": "skip", "from": a["id"], "to": b["id"], "join": join})
            return out
        if kind == "scale":
            m = {
                "kind": "scale",
                "depth": cfg.scale_depth,
                "width": cfg.scale_width,
                "max_channels": cfg.max_channels,
                "max_layers": cfg.max_layers,
                "max_nodes": cfg.max_nodes,
            }
            return [m] if _scale(arch, {**m, "seed": 0}, 3) else []
        raise InvalidArch(f"graph: unknown morphism {kind!r}")

    def random_morph(
        self, arch: Arch, rng: random.Random, kinds: tuple[str, ...] | None = None
    ) -> Morph:
        """A kind uniformly among those possible, then one of its options uniformly."""
        kinds = kinds or tuple(self.cfg.morphisms)
        choices = [k for k in kinds if self.options(arch, k)]
        if not choices:
            raise InvalidArch("graph: no morphism applies (limits reached)")
        m = dict(rng.choice(self.options(arch, rng.choice(choices))))
        if m["kind"] in ("wider", "scale"):
            m["seed"] = rng.randrange(2**31)
        return m

    def morph_sequence(
        self, arch: Arch, n: int, rng: random.Random, kinds: tuple[str, ...] | None = None
    ) -> tuple[Arch, list[Morph]]:
        morphs = []
        for _ in range(n):
            m = self.random_morph(arch, rng, kinds)
            arch, _ = apply_morph(arch, m)
            morphs.append(m)
        return arch, morphs

    def inherit(self, parent: Arch, state: State, morphs: list[Morph]) -> tuple[Arch, State]:
        """The child of ``parent`` under ``morphs`` with function-preserving weights."""
        arch: Arch = parent
        st: State | None = state
        for m in morphs:
            arch, st = apply_morph(arch, m, st)
        assert st is not None
        return arch, st

    def start_arch(self) -> Arch:
        """The configured start net (a copy: callers may change it)."""
        return copy.deepcopy(self.start)

    # -- Space interface
    def sample(self, rng: random.Random) -> Arch:
        n = rng.randint(0, self.cfg.sample_morphs)
        return self.morph_sequence(copy.deepcopy(self.start), n, rng)[0]

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        return apply_morph(arch, self.random_morph(arch, rng))[0]

    def crossover(self, a: Arch, b: Arch, rng: random.Random) -> Arch:
        """Graphs grown by morphisms have no aligned genes to mix: a mutation of ``a``."""
        return self.mutate(a, rng)

    def neighbours(self, arch: Arch) -> list[Arch]:
        seen, out = {self.arch_hash(arch)}, []
        for kind in self.cfg.morphisms:
            for m in self.options(arch, kind):
                child = apply_morph(arch, {**m, "seed": 0})[0]
                h = self.arch_hash(child)
                if h not in seen:
                    seen.add(h)
                    out.append(child)
        return out

    def encode(self, arch: Arch) -> list[float]:
        """Graph features: counts per op and kernel, widths and depth per level (fixed length)."""
        graph = Graph(arch)
        convs = graph.convs()
        feats = [
            float(len(convs)),
            float(sum(n["k"] == 3 for n in convs)),
            float(sum(n["k"] == 5 for n in convs)),
            float(sum(n["op"] == "add" for n in graph.nodes)),
            float(sum(n["op"] == "concat" for n in graph.nodes)),
            math.log2(1 + sum(int(n["c"]) for n in convs)),
            float(self._depth(graph)),
        ]
        for level in range(4):
            cs = [int(n["c"]) for n in convs if graph.level[n["id"]] == level]
            feats += [float(len(cs)), math.log2(1 + max(cs)) if cs else 0.0]
        return feats

    @staticmethod
    def _depth(graph: Graph) -> int:
        """Convs on the longest input-to-output path."""
        depth = {0: 0}
        for n in graph.nodes:
            depth[n["id"]] = max(depth[j] for j in n["in"]) + (n["op"] == "conv")
        return depth[graph.output]

    def canonical(self, arch: Arch) -> Arch:
        """Ids renumbered by position: the same graph grown two ways hashes the same."""
        self.validate(arch)
        new = {0: 0} | {n["id"]: p for p, n in enumerate(arch["nodes"], 1)}
        nodes = []
        for n in arch["nodes"]:
            m = {k: v for k, v in n.items() if k not in ("id", "in")}
            nodes.append({"id": new[n["id"]], "in": [new[j] for j in n["in"]], **m})
        return {"nodes": nodes}

    def size(self) -> int:
        return 0  # unbounded: morphisms keep growing the graph up to the limits

    def validate(self, arch: Arch) -> None:
        if not isinstance(arch, dict) or not isinstance(arch.get("nodes"), list):
            raise InvalidArch("graph: an arch is {'nodes': [...], 'next_id': N}")
        if not arch["nodes"]:
            raise InvalidArch("graph: no nodes")
        Graph(arch)

    def build(self, arch: Arch, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from hwnas.space.graph_modules import GraphNet

        self.validate(arch)
        return GraphNet(arch, input_shape[0], num_classes)

    def describe(self, arch: Arch) -> str:
        graph = Graph(arch)
        toks = []
        for n in graph.nodes:
            op = n["op"]
            if op == "conv":
                toks.append(f"c{n['k']}:{n['c']}")
            elif op == "pool":
                toks.append("P")
            else:
                toks.append(("+" if op == "add" else "&") + f"{graph.order[n['in'][1]]}")
        return " ".join(toks)
