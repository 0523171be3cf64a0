"""``fusepose serve``: the real server (uvicorn on 127.0.0.1) answering concurrent predictions
like the Predictor, refusing malformed requests with 4xx JSON, and writing no file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install 'fusepose[serve]')"
)
pytest.importorskip("uvicorn", reason="the serve extra is not installed")

from cli_helpers import run_cli  # noqa: E402
from serve_helpers import LiveServer, multipart, png_header, post_image, request  # noqa: E402

from fusepose.data.io import read_image  # noqa: E402
from fusepose.inference import Predictor  # noqa: E402
from fusepose.serve import create_app, is_loopback  # noqa: E402

IMAGES = ("000000000785.jpg", "000000040083.jpg", "000000196141.jpg", "000000197388.jpg")
LIMIT = 2 * 1024 * 1024  # the test app's upload limit


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """The tiny test model with random weights, every person kept: answers are plentiful and
    deterministic."""
    return Predictor("test_lmfnet", allow_random_weights=True, input_size=64, score_thr=0)


@pytest.fixture(scope="module")
def live(predictor):
    with LiveServer(create_app(predictor, max_upload_bytes=LIMIT)) as server:
        yield server


def reference(predictor: Predictor, path: Path) -> list[dict]:
    """What the Predictor itself says about an image (keypoints (K, 3), score, box)."""
    res = predictor.predict_frame(read_image(path, apply_exif=True))
    return [{"keypoints": np.c_[p.keypoints, p.keypoint_scores], "score": p.score, "box": p.box}
            for p in res]  # fmt: skip


def same_people(answer: dict, ref: list[dict]) -> None:
    people = answer["people"]
    assert len(people) == len(ref) > 0
    for got, want in zip(people, ref, strict=True):
        kp = np.asarray(got["keypoints"]).reshape(-1, 3)
        assert np.abs(kp - want["keypoints"]).max() < 2e-3
        assert got["score"] == pytest.approx(want["score"], abs=1e-4)
        assert np.abs(np.asarray(got["bbox"]) - want["box"]).max() < 0.01


def concurrent_predictions(
    port: int, paths: list[Path], n: int = 50
) -> list[tuple[Path, int, dict]]:
    """``n`` POST /api/predict at once (the images in turn): ``[(path, status, json)]``."""
    data = {p: p.read_bytes() for p in paths}
    jobs = [paths[i % len(paths)] for i in range(n)]
    with ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(lambda p: post_image(port, data[p], p.name), jobs))
    return [(p, s, a) for p, (s, a) in zip(jobs, answers, strict=True)]


def test_health_and_page(live, predictor):
    status, headers, raw = request(live.port, "GET", "/api/health")
    info = json.loads(raw)
    assert status == 200
    assert info["model"] == "test_lmfnet" and info["backend"] == "torch"
    assert info["geometry"] == {"mode": predictor.geometry.mode, "size": [64, 64],
                                "text": predictor.geometry.describe()}  # fmt: skip
    assert info["skeleton"]["limbs"] == [list(x) for x in predictor.skeleton.limbs]
    status, headers, raw = request(live.port, "GET", "/")
    page = raw.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    # nothing loads from elsewhere: no remote src / href / import / url() in the page
    assert not re.search(
        r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:""", page
    )
    assert 'id="file"' in page and 'id="overlay"' in page and 'id="json"' in page


def test_fifty_concurrent_predictions_match_the_predictor(live, predictor, coco_dir):
    paths = [coco_dir / n for n in IMAGES]
    refs = {p: reference(predictor, p) for p in paths}
    sizes = {p: cv2.imread(str(p)).shape[:2] for p in paths}
    for path, status, answer in concurrent_predictions(live.port, paths):
        assert status == 200, answer
        assert answer["image"] == {"width": sizes[path][1], "height": sizes[path][0]}
        same_people(answer, refs[path])


def _malformed(coco_dir: Path) -> list[tuple[str, int, str, str, object, dict]]:
    """``(what, expected status, method, path, body, headers)``."""
    jpg = (coco_dir / IMAGES[0]).read_bytes()

    def form(*fields):
        body, ctype = multipart(list(fields))
        return body, {"Content-Type": ctype}

    big_body, big_type = multipart([("image", "big.jpg", os.urandom(LIMIT + 1000), "image/jpeg")])
    chunks = iter([big_body[i : i + 65536] for i in range(0, len(big_body), 65536)])
    corpus = [
        ("GET on the POST endpoint", 405, "GET", "/api/predict", None, {}),
        ("PUT on the POST endpoint", 405, "PUT", "/api/predict", b"x", {}),
        ("POST on health", 405, "POST", "/api/health", b"", {}),
        ("unknown path", 404, "GET", "/api/nope", None, {}),
        ("no body, no content type", 415, "POST", "/api/predict", b"", {}),
        ("JSON instead of a form", 415, "POST", "/api/predict", b'{"image": 1}',
         {"Content-Type": "application/json"}),
        ("raw JPEG bytes, not a form", 415, "POST", "/api/predict", jpg,
         {"Content-Type": "image/jpeg"}),
        ("multipart without boundary", 400, "POST", "/api/predict", b"--x\r\n\r\n",
         {"Content-Type": "multipart/form-data"}),
        ("multipart body of garbage", 400, "POST", "/api/predict", b"garbage" * 20,
         {"Content-Type": "multipart/form-data; boundary=abc"}),
        ("multipart cut before its end", 400, "POST", "/api/predict",
         form(("image", "a.jpg", jpg, "image/jpeg"))[0][:-40],
         form(("image", "a.jpg", jpg, "image/jpeg"))[1]),
        ("empty body with a boundary", 400, "POST", "/api/predict", b"",
         {"Content-Type": "multipart/form-data; boundary=abc"}),
        ("wrong field name", 422, "POST", "/api/predict", *form(("file", "a.jpg", jpg, "image/jpeg"))),
        ("no field at all", 422, "POST", "/api/predict", b"--abc--\r\n",
         {"Content-Type": "multipart/form-data; boundary=abc"}),
        ("two images", 400, "POST", "/api/predict",
         *form(("image", "a.jpg", jpg, "image/jpeg"), ("image", "b.jpg", jpg, "image/jpeg"))),
        ("empty image", 400, "POST", "/api/predict", *form(("image", "a.jpg", b"", "image/jpeg"))),
        ("text file", 415, "POST", "/api/predict",
         *form(("image", "a.jpg", b"hello, I am not a picture\n" * 10, "image/jpeg"))),
        ("random bytes", 415, "POST", "/api/predict",
         *form(("image", "a.bin", os.urandom(5000), "application/octet-stream"))),
        ("truncated JPEG", 400, "POST", "/api/predict",
         *form(("image", "a.jpg", jpg[: len(jpg) // 2], "image/jpeg"))),
        ("PNG header of 30000 x 30000", 413, "POST", "/api/predict",
         *form(("image", "bomb.png", png_header(30000, 30000), "image/png"))),
        ("PNG of 60000 x 1", 413, "POST", "/api/predict",
         *form(("image", "wide.png", png_header(60000, 1), "image/png"))),
        ("a 2 x 3000 strip (a 64 x 96000 network input)", 413, "POST", "/api/predict",
         *form(("image", "strip.png", cv2.imencode(".png", np.zeros((2, 3000, 3), np.uint8))[1]
                .tobytes(), "image/png"))),
        ("body over the limit", 413, "POST", "/api/predict", big_body, {"Content-Type": big_type}),
        ("chunked body over the limit", 413, "POST", "/api/predict", chunks,
         {"Content-Type": big_type}),
        ("Content-Length over the limit", 413, "POST", "/api/predict", b"x" * 10,
         {"Content-Type": "multipart/form-data; boundary=abc", "Content-Length": str(LIMIT + 1)}),
        ("a part without a name", 400, "POST", "/api/predict",
         b"--abc\r\nContent-Disposition: form-data\r\n\r\nxyz\r\n--abc--\r\n",
         {"Content-Type": "multipart/form-data; boundary=abc"}),
        ("foreign Host header (DNS rebinding)", 400, "GET", "/api/health", None,
         {"Host": "evil.example:8000"}),
    ]  # fmt: skip
    return corpus


def test_malformed_requests_get_4xx_json_and_the_server_keeps_serving(live, predictor, coco_dir):
    corpus = _malformed(coco_dir)
    assert len(corpus) >= 10
    wrong = []
    for what, want, method, path, body, headers in corpus:
        try:
            status, hdrs, raw = request(live.port, method, path, body, headers, timeout=60)
        except (ConnectionError, OSError) as e:  # the server may close after a 413
            wrong.append(f"{what}: connection error {e!r}")
            continue
        try:
            msg = json.loads(raw)
        except ValueError:
            wrong.append(f"{what}: not JSON ({raw[:80]!r})")
            continue
        if status != want or not (400 <= status < 500) or not isinstance(msg.get("error"), str):
            wrong.append(f"{what}: {status} {msg} (wanted {want})")
        if not hdrs.get("content-type", "").startswith("application/json"):
            wrong.append(f"{what}: content type {hdrs.get('content-type')}")
    assert not wrong, "\n".join(wrong)
    path = coco_dir / IMAGES[2]
    status, answer = post_image(live.port, path.read_bytes())
    assert status == 200
    same_people(answer, reference(predictor, path))


def test_uploads_write_no_file(live, predictor, monkeypatch, tmp_path):
    """A 1.4 MB upload (past the 1 MB where Starlette's form parser spools to a temporary
    file) leaves the temporary folder and the working folder as they were."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    noise = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    data = cv2.imencode(".png", noise)[1].tobytes()
    assert 1_100_000 < len(data) < LIMIT
    before = sorted(os.listdir("."))
    status, answer = post_image(live.port, data, "noise.png")
    assert status == 200 and answer["image"] == {"width": 800, "height": 600}
    assert list(tmp.iterdir()) == []
    assert sorted(os.listdir(".")) == before


def test_a_full_queue_answers_429_not_500(predictor, coco_dir):
    """With room for one request, a second one sent while the first holds the network is
    told to retry (429 JSON) and the first still gets its answer."""
    entered, gate = threading.Event(), threading.Event()
    real = predictor.predict_frame

    def held(*a, **k):
        entered.set()
        gate.wait(60)
        return real(*a, **k)

    data = (coco_dir / IMAGES[0]).read_bytes()
    with LiveServer(create_app(predictor, max_pending=1)) as server, ThreadPoolExecutor(1) as pool:
        predictor.predict_frame = held
        try:
            first = pool.submit(post_image, server.port, data)
            assert entered.wait(60)  # the first request holds the network
            status, answer = post_image(server.port, data)
        finally:
            gate.set()
            del predictor.predict_frame
        assert status == 429 and "busy" in answer["error"]
        assert first.result(timeout=60)[0] == 200


def test_is_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.4", "example.com", "::"]))


def test_serve_verb_errors_are_one_line(tmp_path):
    """The first mistake through a real process (what a shell sees), the others in this one."""

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "fusepose.cli.main", "serve", *args],
                              capture_output=True, text=True, timeout=300)  # fmt: skip

    for i, (args, needle) in enumerate((
        (["test_sfm", "--random-weights"], "--detector"),
        (["test_lmfnet", "--random-weights", "--port", "70000"], "--port"),
        (["test_lmfnet"], "--weights"),
    )):  # fmt: skip
        proc = cli(*args) if i == 0 else run_cli("serve", *args)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and needle in proc.stderr.splitlines()[-1]


def test_fusepose_serve_cli_answers_like_the_predictor(tiny_lmfnet, coco_dir):
    """``fusepose serve CKPT --port 0`` in a subprocess (the model file loaded once): 50
    concurrent requests over the 4 COCO samples get the people ``Predictor(CKPT)`` finds
    (the fast tier's trained tiny checkpoint: serving composes with training, whatever the
    model learned)."""
    ckpt = tiny_lmfnet
    proc = subprocess.Popen([sys.executable, "-m", "fusepose.cli.main", "serve", ckpt,
                             "--port", "0", "--threads", "1"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)  # fmt: skip
    lines: list[str] = []
    found = threading.Event()
    port = {}

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            m = re.search(r"fusepose serve: .* on http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port["n"] = int(m.group(1))
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(180), "".join(lines)
        p = port["n"]
        predictor = Predictor(ckpt)
        status, _h, raw = request(p, "GET", "/api/health")
        assert status == 200 and json.loads(raw)["model"] == predictor.model_name
        paths = [coco_dir / n for n in IMAGES]
        refs = {path: reference(predictor, path) for path in paths}
        assert sum(len(r) for r in refs.values()) >= 8  # people to compare
        for path, status, answer in concurrent_predictions(p, paths):
            assert status == 200, answer
            same_people(answer, refs[path])
        assert proc.poll() is None  # still running
    finally:
        proc.terminate()
        proc.wait(timeout=30)
