"""Corpus, class "server": a bounded soak of ``fusepose serve``'s app on loopback.

2,000 requests, a third of them malformed (wrong method, empty or broken multipart, not an
image, a truncated JPEG, a decompression-bomb header, an oversized body, a wrong Host), 20 in
flight at once, stopping by itself. Every good request is answered with the Predictor's own
output; every malformed one with a 4xx JSON error; the resident memory (``VmRSS`` of this
process, which runs the server in a thread) grows by less than :data:`RSS_BOUND_MIB` from
after a warm-up round to the end. The numbers are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")

from serve_helpers import LiveServer, multipart, png_header, request  # noqa: E402

from fusepose.inference import Predictor  # noqa: E402
from fusepose.serve import create_app  # noqa: E402

REQUESTS = 2000
IN_FLIGHT = 20
WARMUP = 200
RSS_BOUND_MIB = 64  # growth allowed after the warm-up (allocator caches, not a leak)
LIMIT = 256 * 1024  # the soak app's upload limit


def rss_mib() -> float:
    """This process's resident memory (MiB), from /proc (no dependency)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _images(coco_dir: Path) -> list[bytes]:
    """The four COCO photos, shrunk to 160 px wide JPEGs (quick to decode and run)."""
    out = []
    for p in sorted(coco_dir.glob("*.jpg"))[:4]:
        img = cv2.imread(str(p))
        h, w = img.shape[:2]
        small = cv2.resize(img, (160, max(8, round(h * 160 / w))), interpolation=cv2.INTER_AREA)
        out.append(cv2.imencode(".jpg", small)[1].tobytes())
    return out


def _malformed(jpg: bytes) -> list[tuple[str, str, bytes | None, dict[str, str]]]:
    """``(what, method, body, headers)`` of requests the server must refuse with a 4xx."""

    def form(name: str, filename: str | None, data: bytes) -> tuple[bytes, dict[str, str]]:
        body, ctype = multipart([(name, filename, data, "image/jpeg")])
        return body, {"Content-Type": ctype}

    cases = [("GET", "GET", None, {}), ("no body", "POST", b"", {})]
    for what, (body, headers) in {
        "not an image": form("image", "x.jpg", b"hello, not a picture" * 10),
        "truncated jpeg": form("image", "t.jpg", jpg[: len(jpg) // 2]),
        "bomb header": form("image", "b.png", png_header(100_000, 100_000)),
        "wrong field": form("picture", "x.jpg", jpg),
        "too big": form("image", "big.jpg", b"\xff\xd8" + b"\0" * (LIMIT + 10)),
    }.items():
        cases.append((what, "POST", body, headers))
    cases.append(("broken multipart", "POST", b"--x\r\nnonsense", {"Content-Type":
                                                                  "multipart/form-data; boundary=x"}))  # fmt: skip
    good_body, good_headers = form("image", "ok.jpg", jpg)
    cases.append(("wrong Host", "POST", good_body, {**good_headers, "Host": "evil.example"}))
    return cases


@pytest.mark.slow  # ~2,000 requests: a minute or two on 2 cores
def test_a_soak_of_two_thousand_requests_keeps_memory_and_answers(coco_dir):
    predictor = Predictor("test_lmfnet", allow_random_weights=True, input_size=64, score_thr=0)
    images = _images(coco_dir)
    refs = []
    for data in images:
        res = predictor.predict_frame(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
        refs.append([(np.c_[p.keypoints, p.keypoint_scores], p.score) for p in res])
    bad = _malformed(images[0])
    good = [multipart([("image", f"{i}.jpg", d, "image/jpeg")]) for i, d in enumerate(images)]
    jobs = [("bad", i % len(bad)) if i % 3 == 2 else ("good", i % len(images))
            for i in range(REQUESTS)]  # fmt: skip

    def send(job: tuple[str, int]) -> str | None:
        """None when the answer is right, else what was wrong."""
        kind, k = job
        if kind == "good":
            body, ctype = good[k]
            status, _h, raw = request(port, "POST", "/api/predict", body, {"Content-Type": ctype},
                                      timeout=60)  # fmt: skip
            if status != 200:
                return f"good {k}: {status} {raw[:100]!r}"
            people = json.loads(raw)["people"]
            if len(people) != len(refs[k]):
                return f"good {k}: {len(people)} people, the Predictor {len(refs[k])}"
            for got, (kp, score) in zip(people, refs[k], strict=True):
                if np.abs(np.asarray(got["keypoints"]).reshape(-1, 3) - kp).max() > 2e-3 or abs(
                        got["score"] - score) > 1e-4:  # fmt: skip
                    return f"good {k}: another answer than the Predictor's"
            return None
        what, method, body, headers = bad[k]
        try:
            status, hdrs, raw = request(port, method, "/api/predict", body, headers, timeout=60)
        except OSError:  # the server may close the connection after a 413
            return None if what == "too big" else f"{what}: connection error"
        ok = 400 <= status < 500 and isinstance(json.loads(raw or b"{}").get("error"), str)
        return None if ok else f"{what}: {status} {raw[:100]!r}"

    with LiveServer(create_app(predictor, max_upload_bytes=LIMIT)) as server:
        port = server.port
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
            warm = [e for e in pool.map(send, jobs[:WARMUP]) if e]
            before = rss_mib()
            errors = [e for e in pool.map(send, jobs[WARMUP:]) if e]
        after = rss_mib()
        seconds = time.monotonic() - t0
    n_bad = sum(kind == "bad" for kind, _ in jobs)
    print(f"\nsoak: {REQUESTS} requests ({n_bad} malformed, {IN_FLIGHT} in flight) in "
          f"{seconds:.0f} s; wrong answers {len(warm) + len(errors)}; RSS after warm-up "
          f"{before:.0f} MiB, at the end {after:.0f} MiB (+{after - before:.1f})")  # fmt: skip
    assert not warm and not errors, (warm + errors)[:10]
    assert after - before < RSS_BOUND_MIB
