"""How long the step-validity verifier takes per sentence, on real traces and on hostile input.

Run: PYTHONPATH=src python benchmarks/verifier_speed.py [THOUGHT_ANCHORS_DIR]   (default: $ANCHORS_TA_DATA)
Prints medians over 5 repeats and each kind's ratio to the median real sentence; no assertion (timings
belong here, not in tests).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from anchors.arithmetic.claims import check_sentence
from anchors.traces.segment import split_sentences
from anchors.thought_anchors import load_thought_anchors

HOSTILE = {
    "99,999-digit literal": "9" * 99_999 + " + 1 = 2",
    "5,000-term sum": "1+" * 5_000 + "1 = 5001",
    "3,000 nested brackets": "(" * 3_000 + "1 = 1",
    "power tower": "9^9^9^9 = 1",
    "20,000 relations": "= " * 20_000,
}


def per_sentence(sentences: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for sentence in sentences:
            check_sentence(sentence)
        times.append((time.perf_counter() - start) / len(sentences))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", type=Path, default=os.environ.get("ANCHORS_TA_DATA"),
                        help="the authors' released traces (a Thought Anchors folder); default $ANCHORS_TA_DATA")
    root = parser.parse_args().folder
    if root is None:
        parser.error("give the Thought Anchors folder, or set ANCHORS_TA_DATA")
    sentences = [s.text for t in load_thought_anchors(root) for s in split_sentences(t.thinking)]
    check_sentence("1 + 1 = 2")  # import sympy once, outside the timings
    base = per_sentence(sentences, repeats=3)
    print(f"{'input':<28}{'median s/sentence':>20}{'ratio':>10}")
    print(f"{'real (' + str(len(sentences)) + ' R1 sentences)':<28}{base:>20.6f}{1.0:>10.1f}")
    for name, text in HOSTILE.items():
        seconds = per_sentence([text])
        print(f"{name:<28}{seconds:>20.6f}{seconds / base:>10.1f}")


if __name__ == "__main__":
    main()
