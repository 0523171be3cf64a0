"""The deployed output layout of a pose network (the same for PyTorch inference and ONNX)."""

from __future__ import annotations

from torch import Tensor, nn

from fusepose.family import Family, get_family

__all__ = ["InferenceWrapper", "output_names"]


def output_names(kind: str | Family) -> list[str]:
    """Names of the deployed outputs: bottom-up ``out_q, out_h``; top-down ``heatmaps``."""
    return list(get_family(kind).output_names)


class InferenceWrapper(nn.Module):
    """``forward(x) -> tuple`` of the outputs inference decodes (the family's ``outputs``).

    Bottom-up: ``(out_q (B, 2K, H/4, W/4), out_h (B, K, H/2, W/2))``; top-down: the final
    stage's heatmaps ``(B, K, H/4, W/4)`` only (intermediate supervision is a training aid).
    ``kind`` defaults to ``model.info.kind`` (pass it for a wrapped inference copy).
    """

    def __init__(self, model: nn.Module, kind: str | Family | None = None) -> None:
        super().__init__()
        self.model = model
        self.family = get_family(kind or model.info.kind)
        self.kind = self.family.name
        if hasattr(model, "info"):
            self.info = model.info

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x)
        if self.family.staged:
            return (out[-1] if isinstance(out, list | tuple) else out,)
        return tuple(out[: len(self.family.outputs)])
