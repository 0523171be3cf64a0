"""The deployed output layout of a pose network (the same for PyTorch inference and ONNX)."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["InferenceWrapper", "output_names"]


def output_names(kind: str) -> list[str]:
    """Names of the deployed outputs: bottom-up ``out_q, out_h``; top-down ``heatmaps``."""
    return ["out_q", "out_h"] if kind == "bottom_up" else ["heatmaps"]


class InferenceWrapper(nn.Module):
    """``forward(x) -> tuple`` of the outputs inference decodes.

    Bottom-up: ``(out_q (B, 2K, H/4, W/4), out_h (B, K, H/2, W/2))``; top-down: the final
    stage's heatmaps ``(B, K, H/4, W/4)`` only (intermediate supervision is a training aid).
    ``kind`` defaults to ``model.info.kind`` (pass it for a wrapped inference copy).
    """

    def __init__(self, model: nn.Module, kind: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.kind = kind or model.info.kind
        if hasattr(model, "info"):
            self.info = model.info

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        out = self.model(x)
        if self.kind == "bottom_up":
            return out[0], out[1]
        return (out[-1] if isinstance(out, list | tuple) else out,)
