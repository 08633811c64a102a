"""pi/compare.py, which decides `make pi-check`: equal lines pass, any moved offset or bound or extra line fails,
scores only beyond the tolerance, timestamps never."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

COMPARE = ROOT / "pi" / "compare.py"
LINES = [
    {"label": "yes", "score": 0.9369, "offset": 1.695, "timestamp": "2026-12-02T04:48:50.995+00:00"},
    {"label": "rain", "event": "end", "score": 0.9334, "offset": 14.195, "start": 9.398, "end": 12.598,
     "duration": 3.2, "timestamp": "2026-12-02T04:48:51.000+00:00"},
]


def _compare(tmp_path: Path, candidate: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    files = []
    for name, lines in (("reference", LINES), ("candidate", candidate)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        files.append(str(path))
    return subprocess.run([sys.executable, str(COMPARE), *files, "--score-tol", "0.01"], capture_output=True,
                          text=True, timeout=60)


def test_the_same_lines_at_other_times_and_close_scores_pass(tmp_path: Path) -> None:
    candidate = [dict(LINES[0], timestamp="later", score=0.9329), dict(LINES[1], timestamp="later")]
    result = _compare(tmp_path, candidate)
    assert result.returncode == 0, result.stdout
    assert "2 detections match the reference (largest score difference 0.0040" in result.stdout


def test_a_moved_end_a_far_score_or_an_extra_line_fails(tmp_path: Path) -> None:
    moved = [LINES[0], dict(LINES[1], end=12.498)]
    result = _compare(tmp_path, moved)
    assert result.returncode == 1 and "line 2: end 12.498 vs reference 12.598" in result.stdout
    far = [dict(LINES[0], score=0.90), LINES[1]]
    result = _compare(tmp_path, far)
    assert result.returncode == 1 and "line 1 (yes at 1.695): score 0.9 vs reference 0.9369" in result.stdout
    extra = [*LINES, {"label": "up", "score": 0.796, "offset": 7.395}]
    result = _compare(tmp_path, extra)
    assert result.returncode == 1 and "only here:" in result.stdout and "3 detections, the reference has 2" in result.stdout
