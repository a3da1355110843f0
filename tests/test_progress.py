"""One rule for progress bars (`mamamia.progress`): drawn on stderr only when asked for and
stderr is a terminal; ingest, phantom, prefetch and sync all go through it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mamamia.progress import progress_bar, progress_enabled


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "requested", "drawn"),
    [
        (_Terminal(), True, True),
        (_Terminal(), False, False),
        (io.StringIO(), True, False),
    ],
)
def test_bars_need_a_request_and_a_terminal(
    monkeypatch: pytest.MonkeyPatch, stream: io.StringIO, requested: bool, drawn: bool
) -> None:
    monkeypatch.setattr("sys.stderr", stream)
    assert progress_enabled(requested) is drawn
    with progress_bar(requested, total=3, desc="work") as bar:
        bar.update(3)
    assert ("work" in stream.getvalue()) is drawn


def test_phantom_writes_no_bar_into_a_pipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mamamia_ingest import write_phantom

    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    write_phantom(tmp_path / "raw", cases=1, scale=0.1, progress=True)
    assert "phantom" not in stream.getvalue()
