"""How commands fail: output paths checked up front, one-line messages for the expected Python errors, no rich
markup ever read from user text (tests/acceptance/test_fuzz_cli.py runs all of it through the real commands)."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest
import typer

from anchors import console
from anchors.cli.failures import OutputError, check_output, describe, handles_errors


def test_output_paths_that_can_be_written(tmp_path: Path) -> None:
    check_output(tmp_path / "new" / "deeper" / "out.jsonl", "file", "--out")
    check_output(tmp_path / "new" / "folder", "dir", "--out")
    (tmp_path / "existing.jsonl").write_text("old")
    check_output(tmp_path / "existing.jsonl", "file", "--out")
    check_output(tmp_path, "dir", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.jsonl"]  # the check creates nothing


@pytest.mark.parametrize(("layout", "path", "kind", "message"), [
    ("file", "taken", "dir", "--out {tmp}/taken: is a file, but a folder is needed here"),
    ("dir", "taken", "file", "--out {tmp}/taken: is a folder, but a file is needed here"),
    ("file", "taken/sub/out.jsonl", "file", "--out {tmp}/taken/sub/out.jsonl: {tmp}/taken is a file, not a folder"),
    ("file", "taken/sub", "dir", "--out {tmp}/taken/sub: {tmp}/taken is a file, not a folder"),
])
def test_output_paths_that_cannot(tmp_path: Path, layout: str, path: str, kind: str, message: str) -> None:
    if layout == "file":
        (tmp_path / "taken").write_text("x")
    else:
        (tmp_path / "taken").mkdir()
    with pytest.raises(OutputError) as info:
        check_output(tmp_path / path, kind, "--out")  # type: ignore[arg-type]
    assert str(info.value).startswith(message.format(tmp=tmp_path))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is a Linux pseudo file system")
def test_a_pseudo_file_system_is_refused() -> None:
    with pytest.raises(OutputError, match="cannot write in /proc"):
        check_output(Path("/proc/anchors-test/out.jsonl"), "file", "--out")


def test_os_errors_say_what_where_and_what_to_do() -> None:
    renamed = IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp/.out.jsonl.abc.tmp", None, "/data/out")
    assert describe(renamed) == "/data/out: Is a directory (this is a folder where a file is needed: give a file path)"
    full = OSError(errno.ENOSPC, "No space left on device", "/data/scores.csv")
    assert describe(full).startswith("/data/scores.csv: No space left on device (the disk is full")
    assert "nested too deeply" in describe(RecursionError("maximum recursion depth exceeded"))
    assert describe(KeyError("x")).startswith("internal error: KeyError: 'x'. This is a bug in anchors: rerun with --debug")


def test_handles_errors_exits_2_with_one_line_and_lets_exits_through(capsys: pytest.CaptureFixture[str]) -> None:
    @handles_errors
    def fails() -> None:
        raise FileExistsError(errno.EEXIST, "File exists", "/data/results")

    @handles_errors
    def exits() -> None:
        raise typer.Exit(1)

    with pytest.raises(typer.Exit) as info:
        fails()
    assert info.value.exit_code == 2
    assert capsys.readouterr().err.strip() == ("error: /data/results: File exists (a file is in the way where a folder "
                                               "is needed: remove it or choose another path)")
    with pytest.raises(typer.Exit) as info:
        exits()
    assert info.value.exit_code == 1


def test_user_text_is_never_read_as_markup(capsys: pytest.CaptureFixture[str]) -> None:
    console.table("trace [/b]", ["#", "text [bold]"], [(0, "Look [/b] here [red]x[/red]."), (1, None)])
    console.error("bad value '[/i]'")
    console.warn("[link=x]y[/link]")
    captured = capsys.readouterr()
    assert "trace [/b]" in captured.out and "Look [/b] here [red]x[/red]." in captured.out
    assert "error: bad value '[/i]'" in captured.err and "warning: [link=x]y[/link]" in captured.err
