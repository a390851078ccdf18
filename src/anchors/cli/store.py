"""`anchors store merge` and `anchors store info`: rollout stores of a study run on several machines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from anchors import console
from anchors.cli import app, checks_outputs, handles_errors
from anchors.errors import InputError

store_app = typer.Typer(help="Rollout stores: merge the shards of a study, see what a store holds.",
                        no_args_is_help=True, rich_markup_mode=None)
app.add_typer(store_app, name="store")


@store_app.command("merge")
@handles_errors
@checks_outputs(into="file")
def merge(
    sources: Annotated[list[Path], typer.Argument(help="Stores to merge (e.g. one per shard or machine).")],
    into: Annotated[Path, typer.Option("--into", help="The store to merge into (created if absent; its own rows are kept).")],
) -> None:
    """Copy every rollout of the SOURCES that --into lacks. A rollout present in both must be the same (text, tokens,
    seed, finish, logprobs): one that differs is refused and named, and the command exits 1. Running it again adds
    nothing; any machine can then score from the merged store without sampling."""
    from anchors.rollouts.store import RolloutStore

    rows, problems = [], 0
    with RolloutStore(into) as target:
        for source in sources:
            try:
                counts = target.merge(source)
            except InputError as error:
                console.warn(f"{error}; skipped, the other stores are merged")
                problems += 1
                continue
            rows.append((source, counts.rows, counts.added, counts.identical, counts.conflicting))
            if counts.conflicting:
                problems += 1
                _name_conflicts(counts)
        total = target.count()
    console.table(f"merged into {into}", ["store", "rows", "added", "already there", "refused (differ)"], rows)
    console.stdout.print(f"{into}: {total} rollouts", highlight=False)
    if problems:
        raise typer.Exit(1)


def _name_conflicts(counts: Any) -> None:
    shown = "; ".join(str(key) for key in counts.conflicts)
    more = f" and {counts.conflicting - len(counts.conflicts)} more" if counts.conflicting > len(counts.conflicts) else ""
    console.warn(f"{counts.source}: {counts.conflicting} rollout(s) differ from the ones already in the store under the "
                 f"same key (sampled twice with a different batch layout, machine or library version?); kept the "
                 f"store's, refused these: {shown}{more}")


@store_app.command("info")
@handles_errors
def info(
    store: Annotated[Path, typer.Argument(help="A rollout store (SQLite).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON instead of tables.")] = False,
) -> None:
    """What a store holds: rollouts by sampler and sampling parameters (request keys, traces, finish reasons, tokens),
    and the rollouts that failed and are still missing, by cause (a re-run of the same command retries them)."""
    from anchors.rollouts.store import RolloutStore, check_store

    check_store(store)
    with RolloutStore(store) as opened:
        groups, total = opened.summary(), opened.count()
    if as_json:
        console.stdout.print_json(json.dumps({"store": str(store), "rollouts": total, "groups": groups}))
        return
    console.stdout.print(f"{store}: {total} rollouts", highlight=False)
    for g in groups:
        console.table(g["sampler"], ["", ""], [
            ("sampling", _params(g["params_record"]) + f" (params {g['params']})"),
            ("rollouts", g["rows"]), ("request keys", g["request_keys"]), ("traces", g["traces"]),
            ("finish reasons", _counts(g["finish_reasons"])), ("completion tokens", g["completion_tokens"]),
            ("failed, still missing", g["missing_after_failure"]),
            *((f"  × {count}", cause) for cause, count in g["failure_causes"].items())])


def _params(record: dict[str, Any]) -> str:
    names = {"temperature": "T", "top_p": "top-p", "max_new_tokens": "max tokens"}
    return ", ".join(f"{short} {record[name]}" for name, short in names.items() if name in record)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
