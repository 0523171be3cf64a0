"""``Predictor``: image / folder / video / webcam -> people with keypoints in original pixels.

Pipeline (one code path for the PyTorch and the ONNX Runtime backends):

- bottom-up: HigherHRNet test resize (``bottom_up_warp``: short side -> input size, long side
  rounded up to a multiple of 64) or, for a fixed ``(H, W)`` input size, a letterbox affine;
  optional flip and multi-scale; decode with ``AssociativeEmbeddingCodec``; map back with the
  inverse affine.
- top-down: person boxes ``[x, y, w, h]`` (original pixels) from the caller, a COCO detection
  file or a bottom-up "detector" model -> crops (``top_down_warp``) run in batches -> decode
  with ``TopDownHeatmapCodec`` (flip: ``flip_back`` and average) -> inverse crop affine.

``predictor.timings`` holds the last call's ``preprocess_ms``, ``network_ms`` and
``decode_ms`` (decode includes the mapping back to the image).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fusepose.data.io import read_json
from fusepose.errors import CheckpointError, ConfigError, DataError
from fusepose.inference.sources import Frame, check_image_array, iter_frames, source_kind
from fusepose.structures import PoseInstance, PoseResult, box_from_keypoints

logger = logging.getLogger(__name__)

Network = Callable[[np.ndarray], list[np.ndarray]]


# ------------------------------------------------------------------------------ geometry


def letterbox_matrix(image_hw: tuple[int, int], input_hw: tuple[int, int]) -> np.ndarray:
    """2x3 affine (original -> input pixels) fitting the whole image into ``input_hw``.

    The image is scaled uniformly by ``min(H_in / H, W_in / W)`` and centred; the rest is
    zero padding. Used for fixed-shape inputs (e.g. a fixed-size ONNX export).
    """
    h, w = image_hw
    h_in, w_in = input_hw
    s = min(h_in / h, w_in / w)
    return np.array(
        [[s, 0.0, (w_in - s * w) / 2.0], [0.0, s, (h_in - s * h) / 2.0]], dtype=np.float64
    )


def invert_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map (..., 2) input-pixel points back to original pixels with the inverse of ``matrix``."""
    from fusepose.data.transforms import affine_points

    inv = cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))
    return np.asarray(affine_points(np.asarray(points, dtype=np.float64), inv), dtype=np.float64)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: Sequence[float],
    thr: float = 0.9,
) -> list[int]:
    """Greedy NMS by object keypoint similarity (HRNet's top-down protocol, threshold 0.9).

    keypoints: (N, K, 2) original pixels; scores: (N,); areas: (N,) box areas in pixels^2.
    Returns the kept indices, best score first. OKS(i, j) = mean_k exp(-d^2 / (2 area_i
    (2 sigma_k)^2)) over all K keypoints, as in HRNet's ``oks_iou`` with no visibility filter.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"))
    var = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(i)
        if not order:
            break
        rest = np.asarray(order)
        d2 = ((kp[rest] - kp[i]) ** 2).sum(-1)  # (M, K)
        oks = np.exp(-d2 / (2.0 * var * (areas[i] + np.spacing(1)))).mean(-1)
        order = [j for j, o in zip(rest.tolist(), oks, strict=True) if o <= thr]
    return keep


# ------------------------------------------------------------------------------ detections


def load_detections(det_file: str | Path, thr: float = 0.0) -> dict[Any, list[tuple]]:
    """COCO detection results -> ``{image_id or file name: [(box xywh, score), ...]}``.

    Entries need ``bbox`` and one of ``image_id`` / ``file_name`` / ``image_name``; only
    ``category_id == 1`` (person) is kept when a category is given.
    """
    det_file = Path(det_file)
    data = read_json(det_file, "detection file")
    if not isinstance(data, list):
        raise DataError(f"{det_file}: expected a list of COCO detections")
    out: dict[Any, list[tuple]] = {}
    for i, d in enumerate(data):
        if not isinstance(d, dict) or "bbox" not in d:
            raise DataError(f"{det_file}: entry {i} has no 'bbox'")
        if d.get("category_id", 1) != 1:
            continue
        box = np.asarray(d["bbox"], dtype=np.float64)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise DataError(f"{det_file}: entry {i} bbox {d['bbox']} is not [x, y, w, h]")
        score = float(d.get("score", 1.0))
        if score < thr or box[2] <= 1 or box[3] <= 1:
            continue
        keys = [d[k] for k in ("image_id", "file_name", "image_name") if k in d]
        if not keys:
            raise DataError(f"{det_file}: entry {i} has neither 'image_id' nor 'file_name'")
        for key in keys:
            out.setdefault(key, []).append((box, score))
    return out


class ImageIds:
    """Image ids for results: from a COCO JSON (file name -> id), else numeric file names
    (``000000196141.jpg`` -> 196141), else sequential from 0."""

    def __init__(self, ann_file: str | Path | None = None) -> None:
        self.by_name: dict[str, int] = {}
        self.next_id = 0
        if ann_file is not None:
            path = Path(ann_file)
            data = read_json(path)
            images = data.get("images") if isinstance(data, dict) else None
            if not isinstance(images, list):
                raise DataError(f"{path}: no 'images' list (not a COCO annotation file)")
            for img in images:
                self.by_name[Path(str(img.get("file_name", ""))).name] = int(img["id"])

    def __call__(self, frame: Frame) -> int:
        if frame.path is not None:
            name = frame.path.name
            if name in self.by_name:
                return self.by_name[name]
            if not self.by_name and re.fullmatch(r"\d+", frame.path.stem):
                return int(frame.path.stem)
        iid = self.next_id
        self.next_id += 1
        return iid


# ------------------------------------------------------------------------------ predictor


class Predictor:
    """Run a registered model on images, folders, videos or a webcam.

    Args:
        model_name: registered name, or an ``nn.Module`` with ``.info`` (its weights are the
            caller's business). With ``backend="onnx"`` it may be None (read from metadata).
        weights: checkpoint path (``fusepose.engine.checkpoint.load_weights``). Required unless
            ``allow_random_weights`` (then the output is meaningless; a warning says so).
        device: "cpu", "cuda", "cuda:N" or "auto".
        backend: "torch" or "onnx" (``onnx_path`` from ``fusepose export``).
        flip: average with the horizontally flipped input.
        scales: bottom-up test scales (HigherHRNet multi-scale, e.g. (0.5, 1.0, 2.0)).
        input_size: bottom-up: int = short side (default the model's, 512) or (H, W) = fixed
            letterboxed input; top-down: (H, W) crop size (default the model's).
        detector: for top-down models without boxes: a bottom-up model name (uses
            ``detector_weights``) or another Predictor; its people's boxes become the crops.
        codec_kwargs: overrides of the codec's arguments (e.g. ``detection_threshold``).
        nms_thr: top-down OKS-NMS threshold over the people of one image (HRNet uses 0.9 on
            detector boxes); None = keep one pose per box.
        det_file: COCO detection JSON with person boxes keyed by image id or file name.
        batch_size: top-down crops per network call.
        optimize: torch backend: run an inference copy of the network
            (``fusepose.export.optimize.optimize_for_inference``: BN folded, cheaper attention
            operators, channels-last on CPU; same outputs up to float rounding).
        compile: torch backend: also ``torch.compile`` the inference network (TorchInductor:
            fused C++/Triton kernels for the attention and Ghost glue). The first call
            compiles (minutes on a small CPU; cached on disk for later processes) and a second
            input shape triggers one shape-generic recompile, so it pays off for video,
            webcams and fixed-size (letterboxed) input.
            If compilation fails (no C++ compiler, unsupported platform) the Predictor warns
            once and runs uncompiled.
    """

    def __init__(
        self,
        model_name: Any = None,
        weights: str | Path | None = None,
        device: str = "cpu",
        backend: str = "torch",
        onnx_path: str | Path | None = None,
        flip: bool = False,
        scales: Sequence[float] = (1.0,),
        input_size: int | tuple[int, int] | None = None,
        num_threads: int | None = None,
        allow_random_weights: bool = False,
        detector: Any = None,
        *,
        detector_weights: str | Path | None = None,
        det_file: str | Path | None = None,
        det_thr: float = 0.0,
        skeleton: Any = None,
        batch_size: int = 16,
        codec_kwargs: dict[str, Any] | None = None,
        nms_thr: float | None = None,
        optimize: bool = True,
        compile: bool = False,  # noqa: A002 - mirrors torch.compile
    ) -> None:
        import torch

        from fusepose.skeletons import get_skeleton

        if backend not in ("torch", "onnx"):
            raise ConfigError(f"backend {backend!r}: use 'torch' or 'onnx'")
        self.backend = backend
        self.device = _resolve_device(device)
        self.flip = bool(flip)
        self.scales = tuple(float(s) for s in scales) or (1.0,)
        if any(s <= 0 for s in self.scales):
            raise ConfigError(f"scales {self.scales}: must be positive")
        self.batch_size = max(int(batch_size), 1)
        self.nms_thr = nms_thr
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.timings: dict[str, float] = {}
        # Optional ``hook(outputs, matrices) -> outputs`` applied between network and decode
        # (outside the timed network step): outputs as returned by the network for one batch,
        # matrices the (2, 3) original -> input affine of each unflipped batch element.
        # Used to decode GT-rendered maps (tests, realistic decode timing with random weights).
        self.output_hook: Callable[[list[np.ndarray], list[np.ndarray]], list[np.ndarray]] | None
        self.output_hook = None
        self.model = None
        self.runner = None
        self.compiled = False
        fixed_hw: tuple[int, int] | None = None

        if backend == "onnx":
            from fusepose.export.runtime import OnnxRunner

            if onnx_path is None:
                raise ConfigError("backend 'onnx' needs onnx_path (see `fusepose export`)")
            self.runner = OnnxRunner(onnx_path, num_threads=num_threads, device=self.device)
            meta = self.runner.metadata
            name = meta.get("model_name", "")
            if isinstance(model_name, str) and model_name and name and model_name != name:
                raise CheckpointError(f"{onnx_path}: exported from {name!r}, not {model_name!r}")
            self.model_name = name or str(model_name)
            self.kind = str(meta["kind"])
            self.num_keypoints = int(meta["num_keypoints"])
            self.default_input_size = tuple(meta.get("input_size") or ()) or None
            fixed_hw = self.runner.fixed_hw
            self.codec_spec = meta.get("codec")
            self._net: Network = self.runner
            skel_name = meta.get("skeleton") or None
        else:
            self.model = self._build_model(model_name, weights, allow_random_weights)
            self._infer_model = self.model
            if optimize:
                from fusepose.export.optimize import optimize_for_inference

                self._infer_model = optimize_for_inference(
                    self.model, channels_last=self.device == "cpu"
                )
            self._eager_model = self._infer_model
            self.compiled = bool(compile)
            if compile:
                # dynamic=None: a second input shape triggers one shape-generic recompile
                self._infer_model = torch.compile(self._infer_model)
            info = self.model.info
            self.model_name = info.name
            self.kind = info.kind
            self.num_keypoints = int(info.num_keypoints)
            self.default_input_size = tuple(info.input_size)
            self._net = self._torch_net
            skel_name = info.dataset

        self.skeleton = _pick_skeleton(skeleton, skel_name, self.num_keypoints, get_skeleton)
        self.flip_index = list(self.skeleton.flip_index)

        # Input size rules.
        if self.kind == "bottom_up":
            if fixed_hw is not None:
                if input_size is not None and tuple(np.atleast_1d(input_size)) != tuple(fixed_hw):
                    logger.warning("ONNX file has fixed input %s; ignoring input_size", fixed_hw)
                self.input_size: int | tuple[int, int] = tuple(fixed_hw)
            elif input_size is None:
                self.input_size = int(min(self.default_input_size))
            elif isinstance(input_size, int | np.integer):
                self.input_size = int(input_size)
            else:
                self.input_size = _hw(input_size)
            if len(self.scales) > 1 and not isinstance(self.input_size, int):
                raise ConfigError("multi-scale needs the short-side resize (an int input_size)")
        else:
            hw = fixed_hw or (input_size if input_size is not None else self.default_input_size)
            self.input_size = _hw(hw)
        self.codec = self._build_codec(codec_kwargs)

        # Person boxes for top-down models.
        self.detections = load_detections(det_file, det_thr) if det_file else None
        self.detector: Predictor | None = None
        if detector is not None:
            if self.kind != "top_down":
                raise ConfigError("a detector is only used by top-down models")
            if isinstance(detector, Predictor):
                self.detector = detector
            else:
                self.detector = Predictor(
                    detector,
                    weights=detector_weights,
                    device=device,
                    num_threads=num_threads,
                    allow_random_weights=allow_random_weights,
                )
            if self.detector.kind != "bottom_up":
                raise ConfigError(
                    f"detector {self.detector.model_name!r} must be a bottom-up model"
                )

    # -------------------------------------------------------------- construction helpers

    def _build_model(self, model_name: Any, weights: Any, allow_random: bool):
        import torch

        from fusepose.registry import create_model

        if isinstance(model_name, torch.nn.Module):
            model = model_name
            if not hasattr(model, "info"):
                raise ConfigError("a model passed as a module needs a `.info` (ModelInfo)")
        else:
            if not model_name:
                raise ConfigError("model_name is required for the torch backend")
            from fusepose.engine.checkpoint import checkpoint_model_kwargs, load_weights

            # a fusepose checkpoint knows the architecture overrides it was trained with
            kwargs = checkpoint_model_kwargs(weights) if weights is not None else {}
            try:
                model = create_model(str(model_name), **kwargs)
            except KeyError as e:
                raise ConfigError(str(e.args[0])) from None
            if weights is not None:
                load_weights(model, weights)
            elif allow_random:
                logger.warning(
                    "MODEL %s HAS RANDOM WEIGHTS: its keypoints are meaningless "
                    "(pass weights=... for real predictions)",
                    model_name,
                )
            else:
                raise CheckpointError(
                    f"model {model_name!r}: no weights given (pass weights=PATH, or "
                    "allow_random_weights=True / --random-weights for a smoke test)"
                )
        return model.to(self.device).eval()

    def _build_codec(self, codec_kwargs: dict[str, Any] | None):
        import fusepose.codecs as codecs

        spec = self.codec_spec_dict()
        kwargs = {**spec["kwargs"], **(codec_kwargs or {})}
        try:
            return getattr(codecs, spec["type"])(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"codec {spec['type']}({kwargs}): {e}") from None

    def codec_spec_dict(self) -> dict[str, Any]:
        """``{"type", "kwargs"}`` of this predictor's codec (from the ONNX metadata if any)."""
        spec = getattr(self, "codec_spec", None)
        if spec:
            spec = json.loads(json.dumps(spec))
            if spec["type"] == "AssociativeEmbeddingCodec":
                spec["kwargs"]["flip_index"] = self.flip_index
            return spec
        from fusepose.export.package import default_codec_spec

        if self.kind == "bottom_up":
            size = self.input_size if isinstance(self.input_size, int) else min(self.input_size)
            hw = (int(size), int(size))
        else:
            hw = self.input_size  # type: ignore[assignment]
        return default_codec_spec(self.kind, self.num_keypoints, hw, self.flip_index)

    # -------------------------------------------------------------- network

    def _torch_net(self, x: np.ndarray) -> list[np.ndarray]:
        """(B, 3, H, W) float32 -> outputs as float32 numpy (top-down: final heatmaps only)."""
        import torch

        xt = torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        with torch.inference_mode():
            try:
                out = self._infer_model(xt)
            except Exception as e:  # noqa: BLE001 - any compiler failure: fall back, say so
                if not self.compiled:
                    raise
                logger.warning("torch.compile failed (%s: %s); running uncompiled",
                               type(e).__name__, str(e).splitlines()[0][:200])  # fmt: skip
                self.compiled = False
                self._infer_model = self._eager_model
                out = self._infer_model(xt)
        if self.kind == "top_down":
            out = [out[-1] if isinstance(out, list | tuple) else out]
        return [o.float().cpu().numpy() for o in out]

    # -------------------------------------------------------------- public API

    def __call__(
        self,
        source: Any,
        boxes: np.ndarray | None = None,
        box_scores: np.ndarray | None = None,
        image_id: int | None = None,
    ) -> PoseResult:
        """Predict one image (BGR array or path). ``boxes``: (N, 4) ``[x, y, w, h]`` original
        pixels for top-down models (else the detector / det_file is used)."""
        kind = source_kind(source)
        if kind not in ("array", "image"):
            raise ConfigError(
                f"{source}: predictor(source) takes one image; use predictor.stream() for {kind}s"
            )
        frame = next(iter_frames(source))
        return self.predict_frame(frame, boxes=boxes, box_scores=box_scores, image_id=image_id)

    def stream(
        self, source: Any, image_ids: Callable[[Frame], int | None] | None = None
    ) -> Iterator[PoseResult]:
        """Yield one PoseResult per image / frame, reading lazily (constant memory).

        The source is opened (and checked) when ``stream`` is called. ``image_ids`` maps a
        frame to its result's image id (e.g. :class:`ImageIds`); default: none for video
        frames and in-memory arrays, numeric file names / sequential for images.
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
    ) -> PoseResult:
        """Predict one decoded frame (see :meth:`__call__`)."""
        if isinstance(frame, np.ndarray):
            frame = Frame(check_image_array(frame), "<array>", 0, None)
        img = frame.image
        if self.kind == "bottom_up":
            poses, scores = self._bottom_up(img)
            instances = [
                PoseInstance(p[:, :2], np.clip(p[:, 2], 0.0, None), float(s))
                for p, s in zip(poses, scores, strict=True)
            ]
        else:
            if boxes is None:
                boxes, box_scores = self._find_boxes(frame, image_id)
            instances = self._top_down(img, boxes, box_scores)
        return PoseResult(
            instances=instances,
            image_size=(int(img.shape[0]), int(img.shape[1])),
            image_id=image_id,
            source=frame.name,
        )

    # -------------------------------------------------------------- bottom-up

    def warp_matrix(self, image_hw: tuple[int, int], scale: float = 1.0):
        """Bottom-up affine (original -> input pixels) and input size ``(W_in, H_in)``."""
        if isinstance(self.input_size, int):
            from fusepose.data.transforms import bottom_up_warp

            m, (w_in, h_in) = bottom_up_warp(image_hw, input_size=self.input_size, scale=scale)
            return np.asarray(m, dtype=np.float64), (int(w_in), int(h_in))
        h_in, w_in = self.input_size
        return letterbox_matrix(image_hw, (h_in, w_in)), (w_in, h_in)

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._net(batch)

    def _bottom_up(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> poses (N, K, 3) original pixels [x, y, score], scores (N,)."""
        from fusepose.data.transforms import normalize

        t0 = time.perf_counter()
        hw = img.shape[:2]
        inputs = []
        for s in self.scales:
            m, (w_in, h_in) = self.warp_matrix(hw, s)
            warped = cv2.warpAffine(img, m, (w_in, h_in), flags=cv2.INTER_LINEAR)
            inputs.append((m, np.asarray(normalize(warped), dtype=np.float32)))
        t1 = time.perf_counter()
        outs, raw = [], []
        for _m, x in inputs:
            batch = x[None]
            if self.flip:
                batch = np.concatenate([batch, batch[:, :, :, ::-1]], axis=0)
            raw.append(self._run(batch)[:2])
        t2 = time.perf_counter()
        hook_s = 0.0
        for (m, _x), out in zip(inputs, raw, strict=True):
            if self.output_hook is not None:
                th = time.perf_counter()
                out = self.output_hook(list(out), [m])
                hook_s += time.perf_counter() - th
            out_q, out_h = out
            flip_q = out_q[1] if self.flip else None
            flip_h = out_h[1] if self.flip else None
            outs.append((out_q[0], out_h[0], flip_q, flip_h))
        base = self.scales.index(1.0) if 1.0 in self.scales else 0
        if len(outs) == 1:
            poses, scores = self.codec.decode(*outs[0])
        else:
            poses, scores = self._decode_multiscale(outs, inputs, base)
        poses = np.asarray(poses, dtype=np.float64).reshape(-1, self.num_keypoints, 3)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(poses):
            poses[..., :2] = invert_points(poses[..., :2], inputs[base][0])
        t3 = time.perf_counter()
        self.timings = _ms(t0, t1, t2, t3 - hook_s)
        return poses, scores

    def _decode_multiscale(self, outs, inputs, base: int):
        """HigherHRNet multi-scale: every scale projected to the base (1x) scale's input size,
        heatmaps averaged, tags of the base scale only (as the official code); poses come
        out in the base scale's input pixels."""
        from fusepose.codecs.associative_embedding import aggregate_outputs

        h_in, w_in = inputs[base][1].shape[1:]
        heatmaps, base_tags = [], None
        for i, (q, h, fq, fh) in enumerate(outs):
            hm, tags = aggregate_outputs(
                q, h, fq, fh,
                num_keypoints=self.num_keypoints,
                flip_index=self.flip_index,
                project_size=(h_in, w_in),
            )  # fmt: skip
            heatmaps.append(hm)
            if i == base:
                base_tags = tags
        return self.codec.group(np.mean(heatmaps, axis=0, dtype=np.float32), base_tags)

    # -------------------------------------------------------------- top-down

    def _find_boxes(self, frame: Frame, image_id: int | None):
        if self.detections is not None:
            dets = None
            keys: list[Any] = [image_id]
            if frame.path is not None:
                keys += [frame.path.name, str(frame.path)]
                if frame.path.stem.isdigit():
                    keys.append(int(frame.path.stem))
            for key in keys:
                if key is not None and key in self.detections:
                    dets = self.detections[key]
                    break
            if dets is None:
                logger.info("%s: no detections in the det file", frame.name)
                return np.zeros((0, 4)), np.zeros(0)
            return np.stack([d[0] for d in dets]), np.array([d[1] for d in dets])
        if self.detector is not None:
            det = self.detector.predict_frame(frame)
            h, w = frame.image.shape[:2]
            boxes, scores = [], []
            for inst in det.instances:
                b = box_from_keypoints(inst.keypoints, inst.keypoint_scores, thr=0.1)
                x0, y0 = np.clip(b[:2], 0, [w - 1, h - 1])
                x1, y1 = np.clip(b[:2] + b[2:], 0, [w - 1, h - 1])
                if x1 - x0 > 1 and y1 - y0 > 1:
                    boxes.append([x0, y0, x1 - x0, y1 - y0])
                    scores.append(inst.score)
            return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores)
        raise ConfigError(
            f"top-down model {self.model_name!r} needs person boxes: pass boxes=, det_file= "
            "or detector="
        )

    def crop_matrix(self, box: np.ndarray) -> np.ndarray:
        """Top-down crop affine (original -> crop input pixels) for one ``[x, y, w, h]`` box."""
        from fusepose.data.transforms import top_down_warp

        out = top_down_warp(np.asarray(box, dtype=np.float64), self.input_size)
        m = out[0] if isinstance(out, tuple) else out
        return np.asarray(m, dtype=np.float64)

    def _top_down(
        self, img: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray | None
    ) -> list[PoseInstance]:
        from fusepose.data.transforms import normalize

        t0 = time.perf_counter()
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        box_scores = (
            np.ones(len(boxes)) if box_scores is None else np.asarray(box_scores, np.float64)
        )
        h_in, w_in = self.input_size  # type: ignore[misc]
        mats = [self.crop_matrix(b) for b in boxes]
        crops = [
            np.asarray(
                normalize(cv2.warpAffine(img, m, (w_in, h_in), flags=cv2.INTER_LINEAR)),
                dtype=np.float32,
            )
            for m in mats
        ]
        t1 = time.perf_counter()
        raw = []
        for i in range(0, len(crops), self.batch_size):
            batch = np.stack(crops[i : i + self.batch_size])
            if self.flip:
                batch = np.concatenate([batch, batch[:, :, :, ::-1]])
            raw.append((i, self._run(batch)[0]))
        t2 = time.perf_counter()
        heatmaps, hook_s = [], 0.0
        for i, out in raw:
            if self.output_hook is not None:
                th = time.perf_counter()
                out = self.output_hook([out], mats[i : i + self.batch_size])[0]
                hook_s += time.perf_counter() - th
            if self.flip:
                n = len(out) // 2
                flipped = self.codec.flip_back(out[n:], self.flip_index)
                heatmaps.append((out[:n] + np.asarray(flipped)) / 2.0)
            else:
                heatmaps.append(out)
        instances: list[PoseInstance] = []
        if heatmaps:
            coords, kscores = self.codec.decode(np.concatenate(heatmaps))
            coords = np.asarray(coords, dtype=np.float64)
            kscores = np.asarray(kscores, dtype=np.float64)
            for m, c, ks, box, bs in zip(mats, coords, kscores, boxes, box_scores, strict=True):
                pts = invert_points(c, m)
                ks = np.clip(ks, 0.0, None)
                # HRNet rescoring: box score x mean of the confident keypoint scores.
                good = ks[ks > 0.2]
                score = float(bs) * (float(good.mean()) if len(good) else 0.0)
                instances.append(PoseInstance(pts, ks, score, box=box))
        if self.nms_thr is not None and len(instances) > 1:
            keep = oks_nms(
                np.stack([i.keypoints for i in instances]),
                np.array([i.score for i in instances]),
                np.array([b[2] * b[3] for b in boxes]),
                self.skeleton.sigmas,
                self.nms_thr,
            )
            instances = [instances[i] for i in keep]
        t3 = time.perf_counter()
        self.timings = _ms(t0, t1, t2, t3 - hook_s)
        return instances


# ------------------------------------------------------------------------------ helpers


def _ms(t0: float, t1: float, t2: float, t3: float) -> dict[str, float]:
    return {
        "preprocess_ms": (t1 - t0) * 1e3,
        "network_ms": (t2 - t1) * 1e3,
        "decode_ms": (t3 - t2) * 1e3,
        "total_ms": (t3 - t0) * 1e3,
    }


def _hw(size: Any) -> tuple[int, int]:
    vals = [int(v) for v in np.atleast_1d(size)]
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) <= 0:
        raise ConfigError(f"input size {size!r}: expected (H, W)")
    return vals[0], vals[1]


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device {device!r}: use cpu, cuda, cuda:N or auto")
    return device


def _pick_skeleton(skeleton: Any, dataset: str | None, k: int, get_skeleton):
    from fusepose.skeletons import Skeleton

    if isinstance(skeleton, Skeleton):
        skel = skeleton
    elif skeleton is not None:
        skel = get_skeleton(skeleton)
    else:
        skel = None
        for name in (dataset, "coco", "mpii", "crowdpose"):
            try:
                cand = get_skeleton(name) if name else None
            except Exception:  # noqa: BLE001 - unknown dataset name: try the next
                cand = None
            if cand is not None and cand.num_keypoints == k:
                skel = cand
                break
        if skel is None:
            raise ConfigError(f"no built-in skeleton has {k} keypoints: pass skeleton=")
    if skel.num_keypoints != k:
        raise ConfigError(f"skeleton {skel.name!r} has {skel.num_keypoints} keypoints, model {k}")
    return skel
