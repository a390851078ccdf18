"""A 500-rollout job on the tiny Qwen2, run as a separate process by the kill test (and importable by it).

Usage: python kill_job.py STORE.sqlite   (runs the job into STORE, resuming what is there)
"""

from __future__ import annotations

import sys

from anchors.rollouts.base import PrefixRequest, SamplingParams

PARAMS = SamplingParams(max_new_tokens=10, temperature=0.9, top_p=0.95)
BATCH_SIZE = 16
THREADS = 1  # the same thread count in every run: reduction order (and so the last bits) can depend on it


def job_requests(handle) -> list[PrefixRequest]:
    """10 nested prefixes of one trace × 50 rollouts = 500."""
    ids = handle.encode_prompt("What is 12 * 7?", "Twelve times seven. Ten sevens are seventy, two more make "
                                                  "fourteen, so seventy plus fourteen is eighty-four. Check it.")
    cuts = [len(ids) - 3 * i for i in range(10)]
    return [PrefixRequest(key=f"kill/{i}", prompt_text=handle.decode(ids[:cut]), prompt_ids=tuple(ids[:cut]), n=50,
                          seed=100 + i) for i, cut in enumerate(cuts)]


def run_job(store) -> None:
    import torch

    from anchors.models import load_model
    from anchors.rollouts.jobs import collect_rollouts
    from anchors.rollouts.local import LocalEngine

    torch.set_num_threads(THREADS)
    handle = load_model("tiny-qwen2", device="cpu")
    collect_rollouts(LocalEngine(handle, batch_size=BATCH_SIZE), job_requests(handle), PARAMS, store=store,
                     progress=False)


if __name__ == "__main__":
    from anchors.rollouts.store import RolloutStore

    # Commit often, so a kill can land between any two units (and inside one).
    with RolloutStore(sys.argv[1], commit_every_s=0.02) as opened:
        run_job(opened)
