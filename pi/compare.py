"""Compare spotter's JSON detection lines from an emulated Pi with a reference run's (x86, same interpreter).

usage: python3 compare.py REFERENCE.jsonl CANDIDATE.jsonl [--score-tol T]

Every line must match in order: the same keys and the same values for everything but `timestamp` (ignored) and
`score` (within T). Offsets, starts, ends and durations are counted in samples, so they must be equal. Prints one
line per difference and exits 1 if there is any; otherwise prints the largest score difference. Standard library
only: it runs with the host's python3, outside any venv.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

SCORE_TOLERANCE = 0.01
"""Scores are rounded to 4 digits on output; interpreters' float paths may move the last few."""
IGNORED = ("timestamp",)


def load(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def differences(reference: list[dict[str, Any]], candidate: list[dict[str, Any]], tolerance: float) -> tuple[list[str], float]:
    """What differs, line by line, and the largest score difference among matching lines."""
    problems: list[str] = []
    worst = 0.0
    if len(reference) != len(candidate):
        problems.append(f"{len(candidate)} detections, the reference has {len(reference)}")
    for n, (ref, cand) in enumerate(zip(reference, candidate), 1):
        ref = {k: v for k, v in ref.items() if k not in IGNORED}
        cand = {k: v for k, v in cand.items() if k not in IGNORED}
        if set(ref) != set(cand):
            problems.append(f"line {n}: keys {sorted(cand)} vs reference {sorted(ref)}")
            continue
        for key in ref:
            if key == "score":
                gap = abs(float(ref[key]) - float(cand[key]))
                worst = max(worst, gap)
                if gap > tolerance:
                    problems.append(f"line {n} ({ref.get('label')} at {ref.get('offset')}): score {cand[key]} vs "
                                    f"reference {ref[key]}")
            elif ref[key] != cand[key]:
                problems.append(f"line {n}: {key} {cand[key]!r} vs reference {ref[key]!r} ({json.dumps(ref)})")
    if len(candidate) > len(reference):
        problems += [f"only here: {json.dumps(e)}" for e in candidate[len(reference):]]
    else:
        problems += [f"only in the reference: {json.dumps(e)}" for e in reference[len(candidate):]]
    return problems, worst


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference")
    parser.add_argument("candidate")
    parser.add_argument("--score-tol", type=float, default=SCORE_TOLERANCE)
    args = parser.parse_args(argv)
    try:
        reference, candidate = load(args.reference), load(args.candidate)
    except (OSError, ValueError) as exc:
        print(f"compare.py: cannot read the detections: {exc}", file=sys.stderr)
        return 2
    problems, worst = differences(reference, candidate, args.score_tol)
    for problem in problems:
        print(f"  MISMATCH {problem}")
    if problems:
        return 1
    print(f"  {len(reference)} detections match the reference (largest score difference {worst:.4f}, tolerance "
          f"{args.score_tol})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
