"""Group prompts that share all but a few of their tokens with a longer one, so the longest is encoded once.

Prompts nest when one is a prefix of another (sentence i's prefix inside sentence i+1's). Token ids of text
prefixes do not always nest: "…apples. " ends in a lone space token where the longer text has " He", so the
engine also takes in a prompt whose last `max_tail` tokens differ from the group's root (it feeds them first).
"""

from __future__ import annotations

from collections.abc import Sequence


def nesting_groups(prompts: Sequence[Sequence[int]], max_tail: int = 0) -> list[list[int]]:
    """Indices of `prompts` grouped so each group's first member (its root, a longest one) holds all but at
    most `max_tail` tokens of every other member as its own prefix (0: the others are prefixes of the root).

    Groups come in order of their first appearance in `prompts`; within a group, members keep their order
    after the root. Deterministic in `prompts` alone (a resumed job must rebuild the same groups).
    """
    by_length = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    roots: list[int] = []
    members: dict[int, list[int]] = {}
    for i in by_length:
        ids = prompts[i]
        root = next((r for r in roots if len(ids) - common_prefix_length(ids, prompts[r]) <= max_tail), None)
        if root is None:
            roots.append(i)
            members[i] = []
        else:
            members[root].append(i)
    groups = [[root, *sorted(members[root])] for root in roots]
    return sorted(groups, key=min)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    import numpy as np

    n = min(len(a), len(b))
    differ = np.flatnonzero(np.asarray(a[:n], dtype=np.int64) != np.asarray(b[:n], dtype=np.int64))
    return int(differ[0]) if differ.size else n
