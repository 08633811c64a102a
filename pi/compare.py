"""Compare spotter's JSON detection lines from an emulated Pi with x86's.

usage: python3 compare.py REFERENCE.jsonl CANDIDATE.jsonl [--score-tol T]

Every line must match in order: the same keys and the same values for everything but `timestamp` (ignored) and
`score` (within T, default 0.01). Offsets, starts, ends and durations are counted in samples, so they must be
equal. Prints one line per difference and exits 1 if there is any; otherwise prints the largest score difference.
"""
import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv):
    tol = 0.01
    if "--score-tol" in argv:
        i = argv.index("--score-tol")
        tol = float(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    ref_path, cand_path = argv
    ref, cand = load(ref_path), load(cand_path)
    problems = []
    worst = 0.0
    if len(ref) != len(cand):
        problems.append(f"{len(cand)} detections, x86 has {len(ref)}")
    for n, (r, c) in enumerate(zip(ref, cand), 1):
        r = {k: v for k, v in r.items() if k != "timestamp"}
        c = {k: v for k, v in c.items() if k != "timestamp"}
        if set(r) != set(c):
            problems.append(f"line {n}: keys {sorted(c)} vs x86 {sorted(r)}")
            continue
        for k in r:
            if k == "score":
                d = abs(float(r[k]) - float(c[k]))
                worst = max(worst, d)
                if d > tol:
                    problems.append(f"line {n} ({r.get('label')} at {r.get('offset')}): score {c[k]} vs x86 {r[k]}")
            elif r[k] != c[k]:
                problems.append(f"line {n}: {k} {c[k]!r} vs x86 {r[k]!r} ({json.dumps(r)})")
    if len(ref) != len(cand):
        extra = cand[len(ref):] if len(cand) > len(ref) else ref[len(cand):]
        who = "only here" if len(cand) > len(ref) else "only on x86"
        for e in extra:
            problems.append(f"{who}: {json.dumps(e)}")
    for p in problems:
        print(f"  MISMATCH {p}")
    if problems:
        return 1
    print(f"  {len(ref)} detections match x86 (largest score difference {worst:.4f}, tolerance {tol})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
