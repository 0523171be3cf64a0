"""A local web app and REST API around one Predictor (the ``serve`` extra: FastAPI, uvicorn,
python-multipart, Pillow).

    from fusepose.serve import create_app, serve
    serve(Predictor("runs/o/best.pth"))          # http://127.0.0.1:8000/

Endpoints: ``GET /`` (the page: upload an image or use the webcam, the skeleton drawn over
it, the people and their JSON), ``POST /api/predict`` (multipart field ``image``) and
``GET /api/health``. See :mod:`fusepose.serve.app` for the limits and the safety rules.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from fusepose.errors import ConfigError
from fusepose.inference.predictor import Predictor

logger = logging.getLogger(__name__)

__all__ = ["create_app", "is_loopback", "serve"]

_MISSING = "fusepose serve needs the serve extra: pip install 'fusepose[serve]' ({})"


def create_app(predictor: Predictor, **limits: Any):
    """The FastAPI app (see :func:`fusepose.serve.app.create_app`)."""
    try:
        from fusepose.serve.app import create_app as _create  # optional extra: FastAPI
    except ImportError as e:
        raise ConfigError(_MISSING.format(e)) from None
    return _create(predictor, **limits)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, **limits: Any) -> None:
    """Serve ``predictor`` until interrupted. Off loopback any ``Host`` header is answered
    (the caller chose to expose it); on loopback only loopback names are."""
    try:
        import uvicorn  # optional extra
    except ImportError as e:
        raise ConfigError(_MISSING.format(e)) from None
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"--port {port}: must be in 0..65535")
    if not is_loopback(host):  # the caller chose to expose it: any Host name is answered
        logger.warning("serving on %s: reachable from other machines, with no authentication",
                       host)  # fmt: skip
        limits.setdefault("allowed_hosts", None)
    app = create_app(predictor, **limits)
    config = uvicorn.Config(app, host=host, port=int(port), log_level="info", access_log=False)
    try:
        sock = config.bind_socket()  # bound here, so the real port (also for --port 0) is known
    except SystemExit:  # uvicorn exits when it cannot bind; say why in one line
        raise ConfigError(
            f"cannot listen on {host}:{port} (in use, or not an address here)"
        ) from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    logger.info("fusepose serve: %s (%s) on http://%s:%d/", predictor.model_name,
                predictor.backend, shown, bound)  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])
