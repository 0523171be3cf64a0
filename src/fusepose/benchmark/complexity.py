"""Parameter and multiply-accumulate (MAC) counts, in the conventions the papers use.

"GFLOPs" in the HRNet / HigherHRNet / Lite-HRNet literature means GMACs (one multiply-add is
one FLOP). Three counts are reported (docs/reconstruction.md#counting), all at batch 1,
eval mode, one forward pass, no flip:

- ``macs`` (primary): ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2. It counts
  convolutions (transposed convs on their input grid, i.e. their true cost) and matrix
  multiplications only; BN, activations, pooling, resizing and element-wise ops are free.
- ``macs_fvcore``: fvcore's ``FlopCountAnalysis`` total (a fused multiply-add counts one),
  when fvcore is installed; it adds small terms such as upsampling and normalisation.
- ``macs_repo``: the HRNet repositories' *convention*, read from module output shapes with
  forward hooks: conv = weight element count x output H x W; a transposed conv is also
  multiplied by its OUTPUT grid (4x its true cost at stride 2); Linear = in x out; everything
  else ignored. This reproduces the published HigherHRNet-W32 47.9 G at 512.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fusepose.errors import ConfigError
from fusepose.family import BOTTOM_UP, TOP_DOWN

logger = logging.getLogger(__name__)

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
          nn.ConvTranspose3d)  # fmt: skip


@dataclass(frozen=True)
class Complexity:
    """Counts for one model at one input size ``(H, W)`` (batch 1). MACs are absolute counts."""

    input_size: tuple[int, int]
    params: int
    macs: int
    macs_repo: int
    macs_fvcore: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["params_m"] = self.params / 1e6
        d["gmacs"] = self.macs / 1e9
        d["gmacs_repo"] = self.macs_repo / 1e9
        d["gmacs_fvcore"] = None if self.macs_fvcore is None else self.macs_fvcore / 1e9
        return d


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_size(input_size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ConfigError(f"input size must be (H, W), got {input_size!r}") from None
    if h < 1 or w < 1:
        raise ConfigError(f"input size must be positive, got {input_size!r}")
    return h, w


def _dummy_input(model: nn.Module, input_size: Sequence[int], in_channels: int) -> torch.Tensor:
    h, w = _check_size(input_size)
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.randn(1, in_channels, h, w, device=device, dtype=dtype)


class _EvalNoGrad:
    """Context: model in eval mode under no_grad; the training flag is restored on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)
        self.no_grad.__exit__(*exc)


def _repo_hooks(model: nn.Module, total: list[int]) -> list[torch.utils.hooks.RemovableHandle]:
    def conv_hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        # weight elements (groups already in the shape) x output grid, per image
        total[0] += module.weight.numel() * math.prod(output.shape[2:])

    def linear_hook(module: nn.Linear, _inputs: tuple, output: torch.Tensor) -> None:
        total[0] += module.in_features * output.numel() // output.shape[0]

    handles = []
    for m in model.modules():
        if isinstance(m, _CONVS):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    return handles


def _count_both(model: nn.Module, input_size: Sequence[int], in_channels: int) -> tuple[int, int]:
    """One forward: (FlopCounterMode MACs, repo-convention MACs)."""
    x = _dummy_input(model, input_size, in_channels)
    repo = [0]
    handles = _repo_hooks(model, repo)
    try:
        with _EvalNoGrad(model), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return counter.get_total_flops() // 2, repo[0]


def count_macs(model: nn.Module, input_size: Sequence[int], in_channels: int = 3) -> int:
    """MACs of one forward at ``(1, in_channels, H, W)`` with FlopCounterMode (FLOPs / 2)."""
    return _count_both(model, input_size, in_channels)[0]


def count_macs_repo(model: nn.Module, input_size: Sequence[int], in_channels: int = 3) -> int:
    """MACs in the HRNet repositories' convention (see the module docstring)."""
    return _count_both(model, input_size, in_channels)[1]


def count_macs_fvcore(
    model: nn.Module, input_size: Sequence[int], in_channels: int = 3
) -> int | None:
    """fvcore ``FlopCountAnalysis`` total (FMAs), or None when fvcore is not installed."""
    x = _dummy_input(model, input_size, in_channels)
    with _EvalNoGrad(model), warnings.catch_warnings():
        # fvcore scripts and traces with torch.jit, which warns about its own deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            from fvcore.nn import FlopCountAnalysis
        except ImportError:
            logger.debug("fvcore not installed; skipping its count")
            return None
        analysis = FlopCountAnalysis(model, (x,))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())


def measure(
    model: nn.Module, input_size: Sequence[int], *, fvcore: bool = True, in_channels: int = 3
) -> Complexity:
    """Params plus MACs at ``input_size (H, W)`` in all conventions (fvcore when installed)."""
    size = _check_size(input_size)
    macs, repo = _count_both(model, size, in_channels)
    fv = count_macs_fvcore(model, size, in_channels) if fvcore else None
    return Complexity(size, count_params(model), macs, repo, fv)


def measure_registered(
    name: str, sizes: Sequence[Sequence[int]], *, fvcore: bool = False, **overrides: object
) -> dict[tuple[int, int], Complexity]:
    """Counts of registered model ``name`` at each ``(H, W)`` in ``sizes``.

    FlopCounterMode and the repo convention only need shapes, so the model is built on the
    ``meta`` device (no memory, no arithmetic); if that fails it is built on the CPU. fvcore
    traces a real forward pass, so its column (``fvcore=True``) costs one CPU forward per size.
    """
    from fusepose.models.registry import create_model

    sizes_t = [_check_size(s) for s in sizes]
    model = None
    try:
        with torch.device("meta"):
            model = create_model(name, **overrides)
        counted = {s: _count_both(model, s, 3) for s in sizes_t}
    except (RuntimeError, NotImplementedError, TypeError, AttributeError) as e:
        logger.debug("meta-device count of %s failed (%s); counting on the CPU", name, e)
        model = create_model(name, **overrides)
        counted = {s: _count_both(model, s, 3) for s in sizes_t}
    params = count_params(model)
    fv: dict[tuple[int, int], int | None] = {}
    if fvcore:
        first = next(iter(model.parameters()), None)
        on_meta = first is not None and first.device.type == "meta"
        real = create_model(name, **overrides) if on_meta else model
        fv = {s: count_macs_fvcore(real, s) for s in sizes_t}
    return {s: Complexity(s, params, *counted[s], fv.get(s)) for s in sizes_t}


# ------------------------------------------------------------------ zoo table vs the papers

PARAMS_TOL = 0.05  # relative; papers print params to 0.1 M
# relative, against the closest of our conventions: papers print two digits (1.7: +-3 %) and
# the conventions differ by a few percent
GMACS_TOL = 0.07
HINT_TOL = 0.10  # another input size "explains" a paper figure within this


def _rel(ours: float, paper: float) -> float:
    return ours / paper - 1.0


def _closest_gmacs(c: Complexity, paper_g: float) -> tuple[str, float]:
    """(convention, GMACs) of our count closest to the paper's figure."""
    options = {"repo": c.macs_repo / 1e9, "flopcounter": c.macs / 1e9}
    if c.macs_fvcore is not None:
        options["fvcore"] = c.macs_fvcore / 1e9
    return min(options.items(), key=lambda kv: abs(_rel(kv[1], paper_g)))


# Per family: the reconstruction notes that explain a gap to the paper's figures (None: the
# paper's own note, if any), and the input sizes measured besides the paper's.
_PAPER_NOTES = {BOTTOM_UP: "docs/reconstruction.md#l-mfnet-complexity", TOP_DOWN: None}
_EXTRA_SIZES = {BOTTOM_UP: ((256, 256),), TOP_DOWN: ()}


def compare_with_paper(
    info, c: Complexity, other_sizes: dict[tuple[int, int], Complexity] | None = None
) -> tuple[bool | None, str]:
    """Whether our counts agree with ``info.paper`` (params within 5 %, GMACs within 7 % in
    the closest convention) and, when not, a one-line reason. ``None`` when the paper has no
    figures. ``other_sizes`` are counts of the same model at other input sizes."""
    paper = info.paper or {}
    p_params, p_g = paper.get("params_m"), paper.get("gflops")
    if p_params is None and p_g is None:
        return None, ""
    reasons: list[str] = []
    hint = ""
    if p_params is not None and abs(_rel(c.params / 1e6, p_params)) > PARAMS_TOL:
        reasons.append(f"params {c.params / 1e6:.2f} vs {p_params} M")
    if p_g is not None:
        conv, ours_g = _closest_gmacs(c, p_g)
        if abs(_rel(ours_g, p_g)) > GMACS_TOL:
            reasons.append(f"GMACs {ours_g:.2f} ({conv}) vs {p_g}")
            for size, oc in sorted((other_sizes or {}).items()):
                oconv, og = _closest_gmacs(oc, p_g)
                if abs(_rel(og, p_g)) <= HINT_TOL:
                    hint = (
                        f"the paper's GFLOPs match ours at {size[0]}x{size[1]} ({og:.2f} G, "
                        f"{oconv}): likely counted at that input"
                    )
    if not reasons:
        return True, ""
    why = _PAPER_NOTES[info.family]
    if why:
        if hint:
            return False, f"{', '.join(reasons)}: {hint} ({why})"
        explain = "the paper's figures are not reachable by this reconstruction"
        return False, f"{', '.join(reasons)}: {explain} ({why})"
    explain = hint or str(paper.get("note") or "differs from this reconstruction")
    return False, f"{', '.join(reasons)}: {explain}"


def extra_sizes(info) -> list[tuple[int, int]]:
    """Input sizes measured besides the paper's: 256x256 for 512-input bottom-up models
    (L-MFNet's FLOPs look counted at 256, docs/reconstruction.md#l-mfnet-complexity). The table
    shows them for L-MFNet models and wherever they explain a disagreement with the paper."""
    return [s for s in _EXTRA_SIZES[info.family] if s != tuple(info.input_size)]


def zoo_table(pattern: str = "*", *, fvcore: bool = False, progress=None) -> list[dict]:
    """One row per (registered model matching ``pattern``, input size): our params and MACs
    beside the paper's figures, with agreement and a reason where they disagree.

    ``progress``: optional callable wrapping the name list (e.g. ``tqdm``).
    """
    from fusepose.models.registry import get_model_info, zoo_models

    names = zoo_models(pattern)
    rows: list[dict] = []
    for name in progress(names) if progress else names:
        info = get_model_info(name)
        sizes = [tuple(info.input_size), *extra_sizes(info)]
        counts = measure_registered(name, sizes, fvcore=fvcore)
        main = counts[sizes[0]]
        others = {s: oc for s, oc in counts.items() if s != sizes[0]}
        main_agrees, main_reason = compare_with_paper(info, main, others)
        explained = main_agrees is False and "likely counted at that input" in main_reason
        if "mfnet" not in name and not explained:
            counts = {sizes[0]: main}  # extra sizes only for L-MFNet or where they explain
        for size, c in counts.items():
            if size == sizes[0]:
                agrees, reason = compare_with_paper(info, c, others)
            else:
                agrees, reason = None, f"extra size (paper: {sizes[0][0]}x{sizes[0][1]})"
                p_g = info.paper.get("gflops")
                if p_g:
                    conv, g = _closest_gmacs(c, p_g)
                    reason += f"; {g:.2f} G ({conv}) is {_rel(g, p_g):+.0%} from the paper's {p_g}"
            rows.append(
                {
                    "name": name,
                    "kind": info.kind,
                    **c.to_dict(),
                    "paper_params_m": info.paper.get("params_m"),
                    "paper_gflops": info.paper.get("gflops"),
                    "agrees": agrees,
                    "reason": reason,
                }
            )
    return rows
