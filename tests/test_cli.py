"""The CLI: help with an example on every command, and output scripts can read."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from nota.pipeline.ingest import ingest
from nota.cli import app

COMMANDS = sorted(get_command(app).commands)


def test_there_are_commands():
    assert {"simulate", "ingest", "query", "frames"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "nota " in result.output.split("Example:")[1]


def _all_commands(group=None, path=()):
    group = group or get_command(app)
    for name, command in sorted(group.commands.items()):
        if hasattr(command, "commands"):  # a group: its own commands
            yield from _all_commands(command, (*path, name))
        else:
            yield (*path, name), command


@pytest.mark.parametrize("path, command", list(_all_commands()), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_example_line_of_a_command_is_printed_as_written(path, command):
    """click rewraps help paragraphs; the examples must keep one command per line."""
    import inspect

    doc = inspect.cleandoc(command.callback.__doc__ or "").replace("\b\n", "")
    examples = [line.strip() for p in doc.split("\n\n") if p.startswith(" ") for line in p.splitlines()]
    assert examples, f"nota {' '.join(path)} has no example"
    printed = [line.strip() for line in CliRunner().invoke(app, [*path, "--help"], terminal_width=80).output.splitlines()]
    for line in examples:
        assert line in printed, (path, line)


def test_query_json_csv_and_table(archive, write_frame, tmp_path, db_path):
    write_frame("ALrd120001.fits")
    write_frame("ALrd120050.fits", OBJECT="Sky Flat evening", IMAGETYP="OBJECT", EXPTIME=17.0, ALFLTID=0, FBFLTID=78)
    ingest(archive, [tmp_path / "raw"])
    runner = CliRunner()
    sql = "SELECT filename, kind, exptime FROM frames WHERE object REGEXP 'flat' ORDER BY filename"
    out = runner.invoke(app, ["--db", str(db_path), "query", sql, "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == [{"filename": "ALrd120050.fits", "kind": "sky_flat", "exptime": 17.0}]
    out = runner.invoke(app, ["--db", str(db_path), "query", sql, "--csv"])
    assert list(csv.reader(io.StringIO(out.stdout)))[1] == ["ALrd120050.fits", "sky_flat", "17.0"]
    out = runner.invoke(app, ["--db", str(db_path), "query", "SELECT count(*) AS n FROM frames WHERE exptime > :t", "-p", "t=1"])
    assert "1" in out.stdout
    refused = runner.invoke(app, ["--db", str(db_path), "query", "DELETE FROM files"])
    assert refused.exit_code == 1 and refused.output.startswith("Error: refused")


def test_frames_filters(archive, write_frame, tmp_path, db_path):
    write_frame("ALrd120001.fits")
    write_frame("ALrd120057.fits", OBJECT="Sky Flat evening", IMAGETYP="OBJECT", EXPTIME=2.5, ALFLTID=76)
    write_frame("ALrd120050.fits", OBJECT="Sky Flat evening", IMAGETYP="OBJECT", EXPTIME=17.0, ALFLTID=0, FBFLTID=78)
    ingest(archive, [tmp_path / "raw"])
    runner = CliRunner()

    def names(*args):
        out = runner.invoke(app, ["--db", str(db_path), "frames", "--json", *args])
        assert out.exit_code == 0, out.output
        return [r["filename"] for r in json.loads(out.stdout)]

    assert names("--kind", "sky_flat", "--filter", "R") == ["ALrd120057.fits"]
    assert names("--filter", "78") == ["ALrd120050.fits"]
    assert names("--night", "2008-04-12", "--kind", "bias") == ["ALrd120001.fits"]
    assert names("--night", "2008-04-13") == []


def test_a_table_in_a_pipe_is_plain_text_a_row_per_line(archive, write_frame, tmp_path, db_path):
    """In a pipe, ``grep`` and ``awk`` see whole values, one frame per line, under a header."""
    long_object = "A flat field taken through the dome screen with a very long name " * 3
    write_frame("ALrd120001.fits")
    write_frame("ALrd120050.fits", OBJECT=long_object[:68], IMAGETYP="OBJECT", EXPTIME=17.0, ALFLTID=0, FBFLTID=78)
    ingest(archive, [tmp_path / "raw"])
    out = CliRunner().invoke(app, ["--db", str(db_path), "frames"])
    assert out.exit_code == 0, out.output
    header, rule, *lines = out.stdout.splitlines()
    assert header.split()[0] == "filename" and set(rule.replace(" ", "")) == {"-"}
    assert [line.split()[0] for line in lines] == ["ALrd120001.fits", "ALrd120050.fits"]
    assert long_object[:68].strip() in lines[1]  # not folded over lines nor cut
    assert header.index("kind") == lines[0].index("bias")  # columns line up


def test_software_versions_are_those_installed():
    """Read from the ``.dist-info`` names (quick), they must be what importlib.metadata says."""
    from importlib import metadata

    from nota.archive.provenance import _LIBRARIES, software_versions

    versions = software_versions()
    for name in _LIBRARIES:
        assert versions[name] == metadata.version(name), name


def test_the_program_exits_without_the_collectors_last_passes_and_keeps_its_status(tmp_path):
    """``nota`` (``nota.cli.run``) freezes the collector as it exits, with the command's own
    exit status; the app called in-process (as these tests do) leaves the collector alone."""
    import gc
    import subprocess
    import sys

    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
            "from nota.cli import run\n"
            "sys.argv = ['nota', '--db', sys.argv[1], 'query', sys.argv[2]]\n"
            "run()\n")
    db = tmp_path / "none.db"
    done = subprocess.run([sys.executable, "-c", code, str(db), "SELECT 1"], capture_output=True, text=True)
    assert done.returncode == 1 and "no archive here" in done.stderr  # the status survives
    assert done.stdout.split()[-2:] == ["frozen", "True"]
    before = gc.get_freeze_count()
    CliRunner().invoke(app, ["--db", str(db), "query", "SELECT 1"])
    assert gc.get_freeze_count() == before
