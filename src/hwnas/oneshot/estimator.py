"""``estimator: supernet``: any strategy scores archs with a trained supernet's weights.

The supernet is a checkpoint another study trained (``strategy: spos`` trains one along
uniform single paths); each arch runs with the weights of its path after BatchNorm
recalibration (:class:`~hwnas.oneshot.inherit.InheritedScorer`). Its identity hashes the
checkpoint's bytes, so a retrained supernet never answers for the old one, and a supernet
estimate never answers a stand-alone training.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.core.errors import UserError, gist
from hwnas.core.fidelity import Fidelity
from hwnas.estimate.base import Estimate, Estimator, Report, Task

if TYPE_CHECKING:
    from hwnas.hardware.base import Candidate
    from hwnas.oneshot.inherit import InheritedScorer


class SupernetEstimator(Estimator):
    """Inherited-weight accuracy from the supernet in ``estimator.weights``."""

    def __init__(self, cfg: Any, task: Task | None = None) -> None:
        super().__init__(cfg, task)
        self.path = Path(cfg.weights).expanduser()
        self._scorer: InheritedScorer | None = None
        self._digest: str | None = None

    def identity(self) -> str:
        if self._digest is None:
            h = hashlib.sha1()
            if self.path.is_file():
                with self.path.open("rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            self._digest = h.hexdigest()[:10]
        return f"{super().identity()}:{self._digest}"

    def _not_identity(self) -> set[str]:
        # without fine-tuning a score is what it was before these keys: old trial keys stand
        off = {"finetune_steps", "finetune_lr"} if not self.cfg.finetune_steps else set()
        return super()._not_identity() | off

    def _load(self, space: Any, input_shape: Any, num_classes: int) -> dict[str, Any]:
        import torch

        from hwnas.oneshot.search import checkpoint_file, fingerprint_of, not_a_warm_up

        where = f"estimator.weights: {self.path}"
        try:
            checkpoint_file("estimator.weights", self.path)
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from None
        try:
            state = torch.load(self.path, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - a foreign or truncated file
            raise UserError(f"{where} is not a supernet checkpoint ({gist(exc)})") from None
        if why := not_a_warm_up("estimator.weights", self.path, state):
            raise UserError(why)
        if not isinstance(state, dict) or "net" not in state:
            raise UserError(f"{where} is not a supernet checkpoint")
        if state.get("fingerprint") != fingerprint_of(space, input_shape, num_classes):
            raise UserError(
                f"{where} was trained for another space, input or class count, or with plain "
                "BatchNorm in its ops (supernet.op_batchnorm), which stand-alone nets lack"
            )
        return state

    def check(self, space: Any, input_shape: Any, num_classes: int | None) -> None:
        from hwnas.space.capabilities import Supernet

        if not isinstance(space, Supernet):
            raise UserError(
                f"estimator: supernet needs a space with a supernet; {space.name} has none"
            )
        if input_shape is None or num_classes is None:
            raise UserError("estimator: supernet needs data")
        self._load(space, input_shape, num_classes)

    def search_space(self, space: Any) -> Any:
        """Only the supernet's paths: on the chain space the supernet covers a sub-space (one
        width per stage), and an arch outside it has no weights to inherit."""
        from hwnas.oneshot.paths import PathSpace

        return PathSpace(space)

    def _scorer_for(self, cand: Candidate) -> InheritedScorer:
        if self._scorer is None:
            from hwnas.oneshot.inherit import InheritedScorer

            data = self.task.dataset
            assert data is not None, "estimator: supernet needs data"
            state = self._load(cand.space, cand.input_shape, data.num_classes)
            net = cand.space.supernet(cand.input_shape, data.num_classes)  # type: ignore[attr-defined]
            net.load_state_dict(state["net"])
            net.to(self.task.device)
            c = self.cfg
            self._scorer = InheritedScorer(
                net,
                data,
                self.task.device,
                batch_size=c.batch_size,
                bn_batches=c.bn_batches,
                eval_images=c.eval_images,
                seed=7,
                # the arithmetic it was trained in (a checkpoint from before says none: bf16)
                precision=str(state.get("precision", "bf16")),
                finetune_steps=c.finetune_steps,
                finetune_lr=c.finetune_lr,
            )
        return self._scorer

    def estimate(
        self,
        cand: Candidate,
        fidelity: Fidelity,
        *,
        seed: int,
        report: Report | None = None,
        weights_path: Path | None = None,
        recipe: dict[str, Any] | None = None,
        start: Path | None = None,
    ) -> Estimate:
        scorer = self._scorer_for(cand)
        metrics = scorer.score(cand.space.to_choices(cand.arch))  # type: ignore[attr-defined]
        return Estimate(metrics, [{"epoch": 0, **metrics}])
