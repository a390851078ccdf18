"""The Ray tests' job: 2 traces × 4 nested prefixes × 10 rollouts on the tiny Qwen2, sampled on the workers of a Ray
cluster; run as a separate driver process by the driver-kill test (and importable by the tests).

Usage: python ray_job.py STORE.sqlite ADDRESS   (runs the job into STORE through the cluster at ADDRESS, resuming)
"""

from __future__ import annotations

import sys

from anchors.rollouts.base import PrefixRequest, SamplingParams

PARAMS = SamplingParams(max_new_tokens=8, temperature=0.9, top_p=0.95)
BATCH_SIZE = 16
PER_UNIT = 10  # one request a unit: 8 units, so a kill lands between and inside units
THREADS = 1  # every worker and the in-process reference alike: reduction order (the last bits) can depend on it
SPEC_OPTIONS = (("device", "cpu"), ("batch_size", BATCH_SIZE))


def job_requests() -> list[PrefixRequest]:
    """Keys as the planner writes them (<trace>/resample/<prefix>/<block>); prefixes nest within a trace."""
    thinking = {"t0": "Twelve times seven. Ten sevens are seventy, two more make fourteen, so eighty-four.",
                "t1": "Half of ninety is forty-five. Add five and it is fifty. Check: fifty minus five."}
    out = []
    for trace, text in thinking.items():
        words = text.split(" ")
        for i in range(4):
            prefix = " ".join(words[: len(words) - 3 * (3 - i)])
            out.append(PrefixRequest(key=f"{trace}/resample/{i}/0", prompt_text=f"Q: {trace}?\n<think>\n{prefix}",
                                     n=10, seed=1000 + i + (0 if trace == "t0" else 100)))
    return out


def ray_sampler(workers: int = 2, **options):
    from anchors.rollouts.cluster import RaySampler, SamplerSpec

    spec = SamplerSpec("tiny-qwen2", options=SPEC_OPTIONS)
    return RaySampler([spec] * workers, rollouts_per_unit=options.pop("rollouts_per_unit", PER_UNIT), threads=THREADS,
                      **options)


if __name__ == "__main__":
    from anchors.rollouts.cluster import connect
    from anchors.rollouts.jobs import collect_rollouts
    from anchors.rollouts.store import RolloutStore

    connect(sys.argv[2])
    # Commit often, so the kill can land between any two units.
    with RolloutStore(sys.argv[1], commit_every_s=0.02) as opened:
        collect_rollouts(ray_sampler(), job_requests(), PARAMS, store=opened, progress=False)
