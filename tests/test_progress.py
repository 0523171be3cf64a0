"""Progress that fits where it goes: a bar on a terminal, short plain lines on a pipe or file."""

from __future__ import annotations

import io

import pytest

from fusepose.progress import MAX_LINE, Progress, short_lines, track, wrap_prose


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv("FUSEPOSE_PROGRESS", raising=False)


def test_a_pipe_gets_one_short_plain_line_every_ten_percent():
    """100 items, one second each: a line at 10 %, 20 %, ... 100 % (each >= 5 s after the last),
    none repeated at close; no carriage return anywhere."""
    out, clock = io.StringIO(), FakeClock()
    with Progress(100, "eval", unit="img", stream=out, clock=clock) as bar:
        for _ in range(100):
            clock.now += 1.0
            bar.set_postfix(loss=0.000123456, lr=5e-3, note="x" * 400)
            bar.update(1)
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 10
    assert [line.split("%")[0].split(":")[1].strip() for line in lines] == [
        str(p) for p in range(10, 101, 10)
    ]
    assert lines[0].startswith("eval:  10% 10/100 img [0:10 < 1:30, 1 img/s] loss=1.23e-04")
    assert "lr=0.005" in lines[0]
    assert all(len(line) < MAX_LINE for line in lines)


def test_fast_loops_write_fewer_lines_and_slow_unknown_totals_one_a_minute():
    out, clock = io.StringIO(), FakeClock()
    with Progress(1000, "fast", stream=out, clock=clock) as bar:  # 1000 items in 10 s
        for _ in range(1000):
            clock.now += 0.01
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # after 5 s (50 %), then the last one at close
    assert lines[-1].startswith("fast: 100% 1000/1000")

    out, clock = io.StringIO(), FakeClock()
    with Progress(None, "video", unit="frames", stream=out, clock=clock) as bar:
        for _ in range(300):  # 150 s at 2 frames/s, total unknown
            clock.now += 0.5
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # at 60 s, 120 s and the end
    assert lines[0] == "video: 120 frames [1:00, 2 frames/s]"
    assert lines[-1] == "video: 300 frames [2:30, 2 frames/s]"


def test_a_terminal_gets_the_bar():
    out = FakeTerminal()
    with Progress(20, "epoch 1/3", unit="steps", stream=out) as bar:
        for _ in range(20):
            bar.set_postfix(loss=0.5)
            bar.update(1)
    text = out.getvalue()
    assert "\r" in text and "epoch 1/3:" in text and "/20 [" in text  # tqdm draws it


def test_disabled_and_off_write_nothing(monkeypatch):
    out = io.StringIO()
    for _ in track(range(50), desc="x", stream=out, enabled=False):
        pass
    monkeypatch.setenv("FUSEPOSE_PROGRESS", "off")
    for _ in track(range(50), desc="x", stream=FakeTerminal()):
        pass
    assert out.getvalue() == ""
    monkeypatch.setenv("FUSEPOSE_PROGRESS", "plain")
    term = FakeTerminal()
    for _ in track(range(3), desc="forced", stream=term, min_seconds=0):
        pass
    assert "\r" not in term.getvalue() and term.getvalue().splitlines()[-1].startswith("forced")


def test_short_lines_and_wrapped_prose():
    items = [f"metric_{i} {i / 7:.4g}" for i in range(40)]
    lines = short_lines("epoch 3/9 validation: ", items, width=120)
    assert len(lines) > 3 and all(len(line) <= 121 for line in lines)
    assert ", ".join(x.strip().rstrip(",") for x in lines).removeprefix(
        "epoch 3/9 validation: "
    ) == ", ".join(items)
    md = wrap_prose(["## Title " + "t" * 120, "| a | b |" + " x |" * 60, "word " * 60, ""])
    out = md.splitlines()
    assert out[0].startswith("## Title") and out[1].startswith("| a | b |")  # kept whole
    assert all(len(line) <= 100 for line in out[2:])
    assert " ".join(out[2:]).split() == ["word"] * 60


def test_a_total_given_after_the_start_still_gets_ten_percent_lines():
    """``fusepose eval`` learns the image count from its first progress call: a bar made without
    a total, then ``set_total(100)``, writes the same ten lines as one made with it (before the
    fix the first plain-line check added 10 to the None of the unknown start)."""
    out, clock = io.StringIO(), FakeClock()
    with Progress(unit="img", stream=out, clock=clock) as bar:
        for _ in range(100):
            clock.now += 1.0
            bar.set_total(100)
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert [line.split("%")[0].strip() for line in lines] == [str(p) for p in range(10, 101, 10)]
