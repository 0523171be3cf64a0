"""``Predictor``: image / folder / video / webcam -> people with keypoints in original pixels.

A Predictor is three parts: a network (:class:`~fusepose.inference.network.TorchNetwork`,
ONNX Runtime's :class:`~fusepose.export.runtime.OnnxRunner` or OpenVINO's
:class:`~fusepose.export.openvino_runtime.OpenVinoRunner`, at a precision:
:mod:`fusepose.inference.backends`; ``backend="auto"`` measures them,
:mod:`fusepose.inference.auto`), the family pipeline of the model's
description (:mod:`fusepose.codecs.pipelines`: warp, flip / multi-scale, decode, rescoring,
NMS, mapping back) and, for top-down models, a source of person boxes (the caller, a detection
file or a bottom-up detector Predictor). The model file says how to run itself::

    Predictor("runs/o/best.pth")                 # checkpoint: architecture, geometry, test setup
    Predictor("lmfnet.onnx")                     # exported file: the same description
    Predictor("lmfnet", weights="best.pth")      # name checked against the checkpoint
    Predictor("lmfnet", allow_random_weights=True)
    Predictor("best.pth", run=RunOptions(num_threads=2), test=TestOptions(flip=False))
    Predictor("best.pth", num_threads=2, flip=False)   # the same: fields by name

Options come in three small objects (:mod:`fusepose.inference.options`: how to run, test-time
settings, person boxes); every test-time value a caller gives (``flip``, ``scales``,
``input_size``, ``nms_thr``, ...) overrides the stored one. ``predictor.timings`` holds the
last call's ``preprocess_ms``, ``network_ms``, ``decode_ms`` and ``total_ms`` (decode includes
the mapping back to the image).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fusepose.assets import sample_image
from fusepose.codecs.pipelines import Prepared, build_pipeline
from fusepose.data.io import read_image
from fusepose.description import Described, ModelDescription, default_description_for
from fusepose.errors import CheckpointError, ConfigError, DataError
from fusepose.evaluation.nms import oks_nms
from fusepose.export.ir import EXPORT_SUFFIXES, is_exported, is_ir
from fusepose.export.metadata import read_description
from fusepose.export.runtime import ExportedNetwork, is_quantized
from fusepose.geometry import InputGeometry
from fusepose.inference.auto import AutoChoice, choose_path
from fusepose.inference.backends import InferencePath, make_network
from fusepose.inference.boxes import DetectionBoxes, ImageIds, boxes_from_people, whole_image_box
from fusepose.inference.network import TorchNetwork, resolve_device
from fusepose.inference.options import BoxOptions, RunOptions, TestOptions, route_options
from fusepose.inference.sources import Frame, check_image_array, iter_frames, source_kind
from fusepose.modelfile import default_description, load_model
from fusepose.models.init import random_inference_weights
from fusepose.models.registry import create_model, get_model_info
from fusepose.skeletons import Skeleton
from fusepose.structures import PoseResult

# the drawing functions register on import, so a Predictor's results draw and save
# themselves (PoseResult.plot / save) without fusepose.structures importing OpenCV code
from fusepose.visualization import writer as _drawing  # noqa: F401

logger = logging.getLogger(__name__)

__all__ = ["FrameInput", "ImageIds", "Predictor", "oks_nms"]

Network = Callable[[np.ndarray], list[np.ndarray]]
# the Predictor's own parameters besides the option fields (suggested for a mistyped keyword)
_OWN_PARAMETERS = ("model", "weights", "onnx_path", "description", "run", "test", "boxes",
                   "allow_random_weights")  # fmt: skip


@dataclass
class FrameInput:
    """A frame made ready for the network (:meth:`Predictor.prepare_frame`).

    frame: the decoded image; prepared: the pipeline's network inputs and what decoding needs;
    image_id: the result's image id; preprocess_s: seconds the preparation took.
    """

    frame: Frame
    prepared: Prepared
    image_id: int | None
    preprocess_s: float


class Predictor(Described):
    """Run a model on images, folders, videos or a webcam.

    Args:
        model: a checkpoint or ``.onnx`` path, a registered name (then ``weights`` or
            ``allow_random_weights``), or an ``nn.Module`` with ``.info`` (its weights are the
            caller's business). May be omitted when ``weights`` (or ``onnx_path``) is given.
        weights: checkpoint or ``.onnx`` path for a registered name (or the model's name check).
        description: run with this :class:`~fusepose.description.ModelDescription` (e.g.
            the training run's, for an ``nn.Module``).
        run: how the network runs (:class:`~fusepose.inference.options.RunOptions`: device,
            backend, precision, int8_scope, num_threads, optimize, compile, calibration).
            ``predictor.choice`` tells what ``backend="auto"`` chose.
        test: test-time overrides of the description
            (:class:`~fusepose.inference.options.TestOptions`: flip, scales, input_size,
            resize, nms_thr, score_thr, kpt_thr, skeleton, codec_kwargs, batch_size).
        boxes: a top-down model's person boxes
            (:class:`~fusepose.inference.options.BoxOptions`: detector, detector_weights,
            det_file, det_thr).
        allow_random_weights: run a registered name without weights (smoke tests).
        **options: any field of the three option objects by name (``flip=False``,
            ``num_threads=2``, ``det_file=...``; and ``onnx_path``, the same as ``weights``),
            set over ``run`` / ``test`` / ``boxes``. An unknown name is an
            :class:`~fusepose.inference.options.OptionError` naming the closest valid one.
    """

    def __init__(
        self,
        model: Any = None,
        weights: str | Path | None = None,
        *,
        description: ModelDescription | None = None,
        run: RunOptions | None = None,
        test: TestOptions | None = None,
        boxes: BoxOptions | None = None,
        allow_random_weights: bool = False,
        **options: Any,
    ) -> None:
        onnx_path = options.pop("onnx_path", None)
        run, test, boxes = route_options(run, test, boxes, options, known=_OWN_PARAMETERS)
        self.run_options, self.test_options, self.box_options = run, test, boxes
        if run.num_threads is not None:
            torch.set_num_threads(run.num_threads)
        self.device = resolve_device(run.device)
        self.timings: dict[str, float] = {}
        # Optional ``hook(outputs, matrices) -> outputs`` applied between network and decode
        # (outside the timed network step): outputs as returned by the network for one batch,
        # matrices the (2, 3) original -> input affine of each unflipped batch element.
        # Used to decode GT-rendered maps (tests, realistic decode timing with random weights).
        self.output_hook: Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]] | None
        self.output_hook = None
        self.choice: AutoChoice | None = None

        name, path, backend = _what_to_load(model, weights, onnx_path, run.backend)
        module, desc, random_weights = self._load(model, name, path, allow_random_weights)
        self.description = test.apply(description if description is not None else desc)
        info = module.info if module is not None else _registered(self.description.model)
        if self.description.geometry.fixed and info is not None:
            info.check_input_size(self.description.geometry.size)
        self.pipeline_batch = test.batch_size
        self._codec_kwargs = dict(test.codec_kwargs or {})
        self.pipeline = build_pipeline(self.description, batch_size=self.pipeline_batch,
                                       **self._codec_kwargs)  # fmt: skip
        if module is not None and random_weights:
            random_inference_weights(module, [torch.from_numpy(self.sample_input())])
        self._build_network(module, path, backend, run)
        self._attach_boxes(boxes, allow_random_weights)

    # -------------------------------------------------------------- construction helpers

    def _load(self, model: Any, name: str | None, path: Path | None, allow_random: bool):
        """What to load: ``(module or None, stored description, random weights?)``; an ONNX
        file has no module (its network is built by :meth:`_build_network`)."""
        if path is not None and is_exported(path):
            desc = read_description(path)
            if name and desc.model and name != desc.model:
                raise CheckpointError(f"{path}: exported from {desc.model!r}, not {name!r}")
            return None, desc, False
        return self._torch_model(model, name, path, allow_random)

    def _build_network(
        self, module: torch.nn.Module | None, path: Path | None, backend: str, run: RunOptions
    ) -> None:
        """The network of the run options: ``backend="auto"`` measures the paths, else
        ``make_network`` builds the one asked (``self.backend``, ``self.precision``)."""
        self.model: torch.nn.Module | None = None
        self.runner: ExportedNetwork | None = None
        self.network: TorchNetwork | None = None
        onnx_file = path if path is not None and is_exported(path) else None
        build = dict(module=module, onnx_file=onnx_file, desc=self.description,
                     pipeline=self.pipeline, threads=run.num_threads, device=self.device,
                     calibration=run.calibration)  # fmt: skip
        if backend == "auto":
            self.choice = choose_path(model_file=path, **build)
            net, chosen = self.choice.network, self.choice.path
            logger.info("%s", self.choice.describe())
        else:
            precision = run.precision
            if precision is None:
                precision = "int8" if onnx_file is not None and is_quantized(onnx_file) else "fp32"
            chosen = InferencePath(backend, precision, run.int8_scope)
            net = make_network(chosen, optimize=run.optimize, compile=run.compile,
                               emulate_bf16=run.emulate_bf16, **build)  # fmt: skip
        self.backend = chosen.backend
        self.precision = str(getattr(net, "precision", chosen.precision))
        if isinstance(net, TorchNetwork):
            self.network = net
            self.model = net.model
        else:
            self.runner = net
            self.model = module
        self._net: Network = net
        if self.runner is not None and self.runner.fixed_hw is not None:
            if self.description.geometry.size != tuple(self.runner.fixed_hw):
                raise ConfigError(
                    f"{self.runner.path}: fixed input {list(self.runner.fixed_hw)}, but the "
                    f"geometry asks for {self.description.geometry.describe()}; re-export with "
                    "--dynamic or keep the exported size"
                )

    def _attach_boxes(self, boxes: BoxOptions, allow_random: bool) -> None:
        """The detection file and / or the detector Predictor of a top-down model."""
        self.detections = DetectionBoxes(boxes.det_file, boxes.det_thr) if boxes.det_file else None
        self.detector: Predictor | None = None
        detector = boxes.detector
        if detector is None:
            return
        if not self.family.needs_boxes:
            raise ConfigError("a detector is only used by top-down models")
        if isinstance(detector, Predictor):
            self.detector = detector
        else:
            run = RunOptions(device=self.run_options.device,
                             num_threads=self.run_options.num_threads)  # fmt: skip
            self.detector = Predictor(detector, boxes.detector_weights, run=run,
                                      allow_random_weights=allow_random)  # fmt: skip
        if self.detector.family.needs_boxes:
            raise ConfigError(f"detector {self.detector.model_name!r} must be a bottom-up model")
        if not isinstance(detector, Predictor):
            # A detector runs without the AE refine step: refine puts each *missing* joint
            # at the best heatmap peak with a close tag anywhere in the image (official
            # HigherHRNet), a guess that does not belong in a person's box.
            self.detector.set_codec(refine=False)

    def _torch_model(self, model: Any, name: str | None, path: Path | None, allow_random: bool):
        """``(module, description, random weights?)`` for the torch backend."""
        if isinstance(model, torch.nn.Module):
            if not hasattr(model, "info"):
                raise ConfigError("a model passed as a module needs a `.info` (ModelInfo)")
            info = model.info
            return model, default_description_for(info, num_keypoints=info.num_keypoints), False
        if path is not None:
            return (*load_model(path, name), False)
        if not name:
            raise ConfigError("no model: give a checkpoint, an .onnx file or a registered name")
        if not allow_random:
            raise CheckpointError(
                f"model {name!r}: no weights given (pass weights=PATH, or "
                "allow_random_weights=True / --random-weights for a smoke test)"
            )
        logger.warning("MODEL %s HAS RANDOM WEIGHTS (He init, BN calibrated on a sample image): "
                       "its keypoints are meaningless", name)  # fmt: skip
        desc = default_description(name)
        return create_model(name, num_keypoints=desc.num_keypoints), desc, True

    def sample_input(self) -> np.ndarray:
        """The bundled sample photo as this model's network input ``(1, 3, H, W)`` (top-down:
        one crop of the whole image)."""
        img = read_image(sample_image())
        return self.pipeline.prepare(img, whole_image_box(img)).batches[0][:1]

    def set_codec(self, **overrides: Any) -> None:
        """Rebuild the pipeline with codec parameters replaced (e.g. ``refine=False``)."""
        self.pipeline = build_pipeline(self.description, batch_size=self.pipeline_batch,
                                       **{**self._codec_kwargs, **overrides})  # fmt: skip

    def replace_network(self, network: ExportedNetwork) -> None:
        """Run ``network`` (the same model's outputs and input size, e.g. a candidate INT8
        network during accuracy control) instead of the current one."""
        self.runner, self._net = network, network
        self.precision = network.precision

    # -------------------------------------------------------------- what it is
    @property
    def skeleton(self) -> Skeleton:
        return self.description.skeleton

    @property
    def flip_index(self) -> list[int]:
        return self.pipeline.flip_index

    @property
    def codec(self) -> Any:
        return self.pipeline.codec

    @property
    def geometry(self) -> InputGeometry:
        return self.description.geometry

    @property
    def input_size(self) -> tuple[int, int]:
        return self.description.geometry.size

    @property
    def flip(self) -> bool:
        return self.pipeline.flip

    @property
    def compiled(self) -> bool:
        return bool(self.network is not None and self.network.compiled)

    def warp_matrix(self, image_hw: tuple[int, int], scale: float = 1.0):
        """Bottom-up affine (original -> input pixels) and input size ``(W_in, H_in)``."""
        return self.pipeline.warp(image_hw, scale)

    def crop_matrix(self, box: np.ndarray) -> np.ndarray:
        """Top-down crop affine (original -> crop input pixels) for one ``[x, y, w, h]`` box."""
        return self.geometry.crop_matrix(box)

    # -------------------------------------------------------------- public API

    def __call__(
        self,
        source: Any,
        boxes: np.ndarray | None = None,
        box_scores: np.ndarray | None = None,
        image_id: int | None = None,
        score_thr: float | None = None,
    ) -> PoseResult:
        """Predict one image (BGR array or path). ``boxes``: (N, 4) ``[x, y, w, h]`` original
        pixels for top-down models (else the detector / det_file is used)."""
        kind = source_kind(source)
        if kind not in ("array", "image"):
            raise ConfigError(
                f"{source}: predictor(source) takes one image; use predictor.stream() for {kind}s"
            )
        frame = next(iter_frames(source))
        return self.predict_frame(frame, boxes, box_scores, image_id, score_thr=score_thr)

    def stream(
        self, source: Any, image_ids: Callable[[Frame], int | None] | None = None
    ) -> Iterator[PoseResult]:
        """Yield one PoseResult per image / frame, reading lazily (constant memory).

        The source is opened (and checked) when ``stream`` is called. ``image_ids`` maps a
        frame to its result's image id (e.g. :class:`ImageIds`); default: numeric file names /
        sequential.
        """
        frames = iter_frames(source)
        ids = image_ids or ImageIds()

        def gen() -> Iterator[PoseResult]:
            for frame in frames:
                yield self.predict_frame(frame, image_id=ids(frame))

        return gen()

    def predict_frame(
        self,
        frame: Frame | np.ndarray,
        boxes: np.ndarray | None = None,
        box_scores: np.ndarray | None = None,
        image_id: int | None = None,
        score_thr: float | None = None,
    ) -> PoseResult:
        """Predict one decoded frame (see :meth:`__call__`): people best first, those scored
        below ``score_thr`` (default: the description's) left out; 0 keeps everyone."""
        return self.predict_prepared(self.prepare_frame(frame, boxes, box_scores, image_id),
                                     score_thr=score_thr)  # fmt: skip

    def prepare_frame(
        self,
        frame: Frame | np.ndarray,
        boxes: np.ndarray | None = None,
        box_scores: np.ndarray | None = None,
        image_id: int | None = None,
    ) -> FrameInput:
        """The first half of :meth:`predict_frame`: person boxes (top-down, when not given)
        and the pipeline's ``prepare`` (warp, normalise, flip copies). Thread-safe unless the
        boxes come from the detector (:attr:`boxes_need_network`), so a reader thread can run
        it ahead of the network (``workers`` of the dataset loop and ``fusepose predict``)."""
        if isinstance(frame, np.ndarray):
            frame = Frame(check_image_array(frame), "<array>", 0, None)
        if self.pipeline.needs_boxes and boxes is None:
            boxes, box_scores = self.find_boxes(frame, image_id)
        t0 = time.perf_counter()
        try:
            prepared = self.pipeline.prepare(frame.image, boxes, box_scores)
        except DataError as e:  # e.g. an input too large for this image: say which image
            if frame.path is None:
                raise
            raise DataError(f"{frame.name}: {e}") from None
        return FrameInput(frame, prepared, image_id, time.perf_counter() - t0)

    @property
    def boxes_need_network(self) -> bool:
        """A frame without given boxes gets them from the detector network (top-down with a
        detector and no detection file): :meth:`prepare_frame` then belongs on the thread
        that runs networks."""
        return bool(self.pipeline.needs_boxes and self.detections is None
                    and self.detector is not None)  # fmt: skip

    def predict_prepared(self, inp: FrameInput, score_thr: float | None = None) -> PoseResult:
        """The second half of :meth:`predict_frame`: network, decode, score threshold."""
        prepared, img = inp.prepared, inp.frame.image
        t1 = time.perf_counter()
        raw = [self._net(batch) for batch in prepared.batches]
        t2 = time.perf_counter()
        hook_s = 0.0
        if self.output_hook is not None:
            th = time.perf_counter()
            raw = [self.output_hook(list(out), mats)
                   for out, mats in zip(raw, prepared.matrices, strict=True)]  # fmt: skip
            hook_s = time.perf_counter() - th
        people = self.pipeline.decode(prepared, raw)
        thr = self.description.test.score_thr if score_thr is None else float(score_thr)
        if thr > 0:
            people = [p for p in people if p.score >= thr]
        t3 = time.perf_counter()
        self.timings = {
            "preprocess_ms": inp.preprocess_s * 1e3,
            "network_ms": (t2 - t1) * 1e3,
            "decode_ms": (t3 - t2 - hook_s) * 1e3,
            "total_ms": (inp.preprocess_s + t3 - t1 - hook_s) * 1e3,
        }
        return PoseResult(people, (int(img.shape[0]), int(img.shape[1])), inp.image_id,
                          inp.frame.name)  # fmt: skip

    def find_boxes(self, frame: Frame, image_id: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes of a frame for a top-down model: the detection file, else the
        detector's people (its own score threshold applies)."""
        if self.detections is not None:
            return self.detections(frame, image_id)
        if self.detector is not None:
            return boxes_from_people(self.detector.predict_frame(frame))
        raise ConfigError(
            f"top-down model {self.model_name!r} needs person boxes: pass boxes=, det_file= "
            "or detector="
        )


def _registered(name: str):
    """The ModelInfo of a registered name, or None (an ONNX file of a model unknown here)."""
    try:
        return get_model_info(name)
    except KeyError:
        return None


def _what_to_load(model: Any, weights: Any, onnx_path: Any, backend: str | None):
    """``(registered name or None, file path or None, backend)`` of the constructor args
    (``backend`` already checked by :class:`RunOptions`)."""
    name: str | None = None
    path: Path | None = None
    if isinstance(model, str | Path) and not isinstance(model, bool):
        text = str(model)
        if (
            Path(text).suffix.lower() in (*EXPORT_SUFFIXES, ".pth", ".pt", ".ckpt", ".bin")
            or Path(text).is_file()
        ):
            path = Path(text)
        else:
            name = text
    file = onnx_path if onnx_path is not None else weights
    if file is not None:
        if path is not None and Path(file) != path:
            raise ConfigError(f"two model files given: {path} and {file}")
        path = Path(file)
    if backend == "auto":
        return name, path, "auto"
    if path is not None and is_ir(path):
        if backend in ("torch", "onnx"):
            raise ConfigError(f"{path}: an OpenVINO IR runs on backend 'openvino' only, not {backend!r}")
        return name, path, "openvino"
    if path is not None and is_exported(path):
        if backend == "torch":
            raise ConfigError(f"{path}: an ONNX file needs backend 'onnx' or 'openvino'")
        return name, path, backend or "onnx"
    if backend in ("onnx", "openvino"):
        raise ConfigError(f"backend {backend!r} needs an .onnx file{' or an OpenVINO .xml' if backend == 'openvino' else ''} (see `fusepose export`)")
    return name, path, "torch"
