"""Helpers of the serve and browser tests (imported as a plain module: tests/ is on sys.path).

Traffic goes to 127.0.0.1 only; every wait is bounded."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
import uuid
import zlib
from typing import Any


class LiveServer:
    """The app under uvicorn in a thread, on a free loopback port (bound before it starts)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def multipart(fields: list[tuple[str, str | None, bytes, str]]) -> tuple[bytes, str]:
    """``(body, content type)`` of a multipart/form-data body; fields are
    ``(name, file name or None, data, content type)``."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, filename, data, ctype in fields:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += (
            f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: {ctype}\r\n\r\n".encode()
        )
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to 127.0.0.1: ``(status, headers, body)``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {},
                     encode_chunked=body is not None and not isinstance(body, bytes | str))  # fmt: skip
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post_image(port: int, data: bytes, name: str = "image.jpg") -> tuple[int, Any]:
    body, ctype = multipart([("image", name, data, "image/jpeg")])
    status, _h, raw = request(port, "POST", "/api/predict", body, {"Content-Type": ctype})
    return status, json.loads(raw)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header says width x height (8-bit RGB), with a token IDAT: what a
    decompression bomb looks like before its pixels are decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))  # fmt: skip
