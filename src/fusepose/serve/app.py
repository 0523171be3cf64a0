"""The web app: one page, ``POST /api/predict`` and ``GET /api/health`` around one Predictor.

Safe to leave running on a laptop:

- the model is loaded once (the caller's Predictor) and one request at a time runs it (a lock
  around the network; at most ``max_pending`` requests wait, the next ones get 429);
- an upload is read into memory only, bounded by ``max_upload_bytes`` (413 past it), parsed
  with python-multipart's streaming parser (Starlette's own form parser would spool a large
  upload to a temporary file), its pixel count checked from the header before decoding (413
  past ``max_pixels``: no decompression bomb is ever decoded); nothing is written to disk;
- every error is a JSON ``{"error": message, "status": code}`` with a 4xx code (a 500 only
  for a bug, logged with its traceback);
- bound to loopback, requests must name a loopback host (``Host`` header), so a web page
  cannot reach the server through DNS rebinding; the page loads nothing from elsewhere (its
  Content-Security-Policy allows only this server, and its one script by hash).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import threading
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from fusepose.data.io import check_image_limits, decode_image, image_header_size
from fusepose.errors import DataError, FusePoseError
from fusepose.inference.predictor import Predictor
from fusepose.limits import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, MAX_INPUT_FACTOR
from fusepose.structures import PoseResult
from fusepose.visualization.writer import people_json  # the API's JSON of a result

logger = logging.getLogger(__name__)

__all__ = ["LOOPBACK_HOSTS", "ApiError", "create_app", "people_json"]

MiB = 1024 * 1024
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
IMAGE_FIELD = "image"


class ApiError(Exception):
    """A request the server refuses: ``status`` (4xx) and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _page() -> tuple[str, str]:
    """The page's HTML and its Content-Security-Policy (its inline script allowed by hash)."""
    html = resources.files("fusepose.serve").joinpath("page.html").read_text(encoding="utf-8")
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    csp = (
        "default-src 'none'; "
        f"script-src 'sha256-{digest}'; "
        "style-src 'unsafe-inline'; "
        "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    return html, csp


class _HostCheck:
    """ASGI middleware: refuse a request whose ``Host`` is not one of ``hosts`` (any port)."""

    def __init__(self, app: Any, hosts: Sequence[str]) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
            name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
            if name not in self.hosts:
                msg = f"Host {host or '(none)'!r} refused: this server answers {sorted(self.hosts)}"
                await _error(400, msg)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _parse_multipart(body: bytes, content_type: str) -> list[tuple[str, str | None, bytes]]:
    """``[(field name, file name or None, data)]`` of a ``multipart/form-data`` body, in
    memory; ApiError 400 when it is malformed."""
    _ctype, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "multipart/form-data without a boundary parameter")
    parts: list[dict[str, Any]] = []
    header: dict[str, bytearray] = {}
    state = {"ended": False}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header.setdefault("field", bytearray()).extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header.setdefault("value", bytearray()).extend(data[start:end])

    def on_header_end() -> None:
        name = bytes(header.get("field", b"")).decode("latin-1").lower()
        parts[-1]["headers"][name] = bytes(header.get("value", b""))
        header.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"].extend(data[start:end])

    def on_end() -> None:
        state["ended"] = True

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_part_data": on_part_data, "on_end": on_end}  # fmt: skip
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as e:  # python-multipart raises its own and ValueError subclasses
        raise ApiError(400, f"malformed multipart/form-data body ({e})") from None
    if not state["ended"]:
        raise ApiError(400, "malformed multipart/form-data body (no closing boundary)")
    out = []
    for part in parts:
        disposition, opts = parse_options_header(part["headers"].get("content-disposition"))
        if disposition != b"form-data" or b"name" not in opts:
            raise ApiError(
                400, "a multipart part without 'Content-Disposition: form-data; name=...'"
            )
        filename = opts.get(b"filename")
        out.append((opts[b"name"].decode("utf-8", "replace"),
                    None if filename is None else filename.decode("utf-8", "replace"),
                    bytes(part["data"])))  # fmt: skip
    return out


def create_app(
    predictor: Predictor,
    *,
    max_upload_bytes: int = 20 * MiB,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_side: int = MAX_IMAGE_SIDE,
    max_pending: int = 64,
    max_input_factor: int = MAX_INPUT_FACTOR,
    allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
) -> FastAPI:
    """The FastAPI app serving ``predictor`` (loaded once by the caller).

    Args:
        max_upload_bytes: largest request body (413 past it).
        max_pixels, max_side: largest image, W x H and either side (413 past it), checked
            from the file header before any decoding.
        max_pending: requests waiting for or holding the network at once (429 past it).
        max_input_factor: a bottom-up network input may be at most this many times the
            model's input area (413 past it; extreme aspect ratios).
        allowed_hosts: ``Host`` names answered (None: any, e.g. bound to 0.0.0.0 on purpose).
    """
    app = FastAPI(title="fusepose", docs_url=None, redoc_url=None, openapi_url=None)
    html, csp = _page()
    limits = {"max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels,
              "max_side": max_side, "max_input_factor": max_input_factor}  # fmt: skip
    health = _health(predictor, limits)
    runner = _Runner(predictor, max_pending, max_input_factor, limits)
    _add_error_handlers(app)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": csp,
                                           "X-Content-Type-Options": "nosniff",
                                           "Cache-Control": "no-store"})  # fmt: skip

    @app.get("/api/health")
    async def api_health() -> dict[str, Any]:
        return health

    @app.post("/api/predict")
    async def api_predict(request: Request) -> JSONResponse:
        body = await _read_body(request, max_upload_bytes)
        data = _image_part(body, request.headers.get("content-type", ""))
        _check_header(data, max_pixels, max_side)
        if not runner.admit():
            return _error(429, f"busy: {max_pending} requests already queued; retry",
                          headers={"Retry-After": "1"})  # fmt: skip
        try:
            image, result, timings = await run_in_threadpool(runner.predict, data)
        finally:
            runner.release()
        h, w = image.shape[:2]
        return JSONResponse({"image": {"width": int(w), "height": int(h)},
                             "people": people_json(result), "model": predictor.model_name,
                             "timings_ms": timings})  # fmt: skip

    if allowed_hosts is not None:
        app.add_middleware(_HostCheck, hosts=allowed_hosts)
    return app


def _health(predictor: Predictor, limits: dict[str, int]) -> dict[str, Any]:
    """``GET /api/health``'s answer: the model, how it runs, its keypoints and the limits."""
    desc = predictor.description
    return {
        "status": "ok",
        "model": predictor.model_name,
        "kind": predictor.kind,
        "backend": predictor.backend,
        "device": str(predictor.device),
        "geometry": {
            "mode": desc.geometry.mode,
            "size": list(desc.geometry.size),
            "text": desc.geometry.describe(),
        },
        "num_keypoints": predictor.num_keypoints,
        "skeleton": {
            "name": predictor.skeleton.name,
            "keypoints": list(predictor.skeleton.keypoints),
            "limbs": [list(limb) for limb in predictor.skeleton.limbs],
        },
        "score_thr": desc.test.score_thr,
        "kpt_thr": desc.test.kpt_thr,
        "limits": dict(limits),
    }


def _add_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"error": message, "status": code}``; a bug is a logged 500."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, f"invalid request: {exc.errors()}")

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error")
        return _error(500, f"internal error ({type(exc).__name__}); see the server log")


class _Runner:
    """The Predictor behind the app: one request at a time runs it (a lock around the
    network), at most ``max_pending`` wait for it or hold it."""

    def __init__(
        self, predictor: Predictor, max_pending: int, max_input_factor: int, limits: dict[str, int]
    ) -> None:
        self.predictor = predictor
        self.max_pending = int(max_pending)
        self.max_input_factor = int(max_input_factor)
        self.max_pixels, self.max_side = int(limits["max_pixels"]), int(limits["max_side"])
        self.lock = threading.Lock()
        self.pending = 0
        self.pending_lock = threading.Lock()

    def admit(self) -> bool:
        """Count a request in; False when ``max_pending`` are already in (answer 429)."""
        with self.pending_lock:
            if self.pending >= self.max_pending:
                return False
            self.pending += 1
            return True

    def release(self) -> None:
        with self.pending_lock:
            self.pending -= 1

    def check_input(self, hw: tuple[int, int]) -> None:
        """A whole-image (bottom-up) input grows with the image's aspect ratio under the
        short-side resize: refuse (413) one over ``max_input_factor`` x the model's input
        area, by the pipeline's own check (the command line's limit too)."""
        pipeline = self.predictor.pipeline
        if pipeline.needs_boxes:
            return  # top-down crops are the model's fixed size
        try:
            pipeline.check_input(hw, self.max_input_factor)
        except DataError as e:
            raise ApiError(413, str(e)) from None

    def predict(self, data: bytes) -> tuple[np.ndarray, PoseResult, dict[str, float]]:
        """Decode an upload (EXIF applied) and run the Predictor on it (in a worker thread);
        its size was checked from the header with the app's limits."""
        try:
            image = decode_image(data, "upload", apply_exif=True, max_pixels=self.max_pixels,
                                 max_side=self.max_side)  # fmt: skip
        except FusePoseError as e:
            raise ApiError(400, str(e)) from None
        self.check_input(image.shape[:2])
        with self.lock:
            try:
                result = self.predictor.predict_frame(image)
            except FusePoseError as e:  # e.g. an image the model's geometry cannot take
                raise ApiError(400, str(e)) from None
            timings = {k: round(v, 2) for k, v in self.predictor.timings.items()}
        return image, result, timings


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (413 past it, before reading it all when the
    Content-Length says so)."""
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise ApiError(415, f"send multipart/form-data with the file in field {IMAGE_FIELD!r} "
                       f"(got Content-Type {ctype or 'none'!r})")  # fmt: skip
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, f"bad Content-Length {length!r}")
        if int(length) > limit:
            raise ApiError(413, f"upload of {int(length)} bytes: the limit is {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"upload over the limit of {limit} bytes")
            chunks.append(chunk)
    except (asyncio.CancelledError, ApiError):
        raise
    except Exception as e:  # a client that went away mid-body
        raise ApiError(400, f"incomplete request body ({type(e).__name__})") from None
    return b"".join(chunks)


def _image_part(body: bytes, content_type: str) -> bytes:
    """The bytes of the one ``image`` field of a multipart body."""
    if not body:
        raise ApiError(
            400, f"empty request body: send the image in multipart field {IMAGE_FIELD!r}"
        )
    parts = _parse_multipart(body, content_type)
    images = [data for name, _file, data in parts if name == IMAGE_FIELD]
    if not images:
        names = sorted({name for name, _f, _d in parts}) or ["none"]
        raise ApiError(422, f"no multipart field {IMAGE_FIELD!r} (fields sent: {', '.join(names)})")
    if len(images) > 1:
        raise ApiError(400, f"{len(images)} {IMAGE_FIELD!r} fields: send one image per request")
    if not images[0]:
        raise ApiError(400, "empty image (0 bytes)")
    return images[0]


def _check_header(data: bytes, max_pixels: int, max_side: int) -> None:
    """Refuse what is not an image, or too large an image, from its header alone (Pillow
    reads the size without decoding the pixels)."""
    try:
        header = image_header_size(data, "upload")
    except DataError as e:
        raise ApiError(413, str(e)) from None
    if header is None:
        head = data[:16]
        kind = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "binary"
        raise ApiError(415, f"not an image ({kind} content, {len(data)} bytes): send a JPEG, "
                       "PNG, BMP, WebP or TIFF file")  # fmt: skip
    w, h, fmt = header
    if w < 1 or h < 1:
        raise ApiError(400, f"{fmt} image of {w}x{h} pixels")
    try:  # the command line's check, with this app's limits
        check_image_limits(w, h, f"{fmt} upload", max_pixels, max_side)
    except DataError as e:
        raise ApiError(413, str(e)) from None
