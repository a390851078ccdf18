"""Group prompts whose token ids nest (one is a prefix of another), so the longest is encoded once."""

from __future__ import annotations

from collections.abc import Sequence


def nesting_groups(prompts: Sequence[Sequence[int]]) -> list[list[int]]:
    """Indices of `prompts` grouped so each group's first member contains all others as prefixes.

    Groups come in order of their first appearance in `prompts`; within a group, members keep their order
    after the root. Deterministic in `prompts` alone (a resumed job must rebuild the same groups).
    """
    by_length = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    roots: list[int] = []
    members: dict[int, list[int]] = {}
    for i in by_length:
        ids = tuple(prompts[i])
        root = next((r for r in roots if tuple(prompts[r][:len(ids)]) == ids), None)
        if root is None:
            roots.append(i)
            members[i] = []
        else:
            members[root].append(i)
    groups = [[root, *sorted(members[root])] for root in roots]
    return sorted(groups, key=min)
