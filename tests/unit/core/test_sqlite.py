"""SqliteKind: the one way smartline opens its own SQLite files (batch journal, sample store,
line history) — new files get their schema once, other files are refused by name."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from smartline.core import RecipeError, SmartlineError, SqliteKind

KIND = SqliteKind(what="test file", version=3, tables=("a", "b"),
                  schema="CREATE TABLE a (x); CREATE TABLE b (y); INSERT INTO a VALUES (1)",
                  synchronous="FULL", hint="give another --file")


def test_a_new_file_gets_the_schema_and_version_once(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    for _ in range(2):  # the second open finds the file made and leaves it as it is
        conn = KIND.open(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("SELECT count(*) FROM a").fetchone()[0] == 1
        conn.close()


def test_read_only_checks_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    sqlite3.connect(path).close()  # an empty file: accepted, left empty
    KIND.open(path, read_only=True).close()
    assert path.stat().st_size == 0
    KIND.open(path).close()
    conn = KIND.open(path, read_only=True)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("INSERT INTO a VALUES (2)")
    conn.close()


@pytest.mark.parametrize("read_only", [False, True])
def test_other_files_are_refused_naming_the_file_and_the_way_out(tmp_path: Path,
                                                                  read_only: bool) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"no database at all " * 100)
    with pytest.raises(SmartlineError, match=r"test file .*garbage\.db: not an SQLite database "
                                             r".*; give another --file"):
        KIND.open(garbage, read_only=read_only)

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE a (x)")  # one table of the kind, not all of them
    with pytest.raises(SmartlineError, match=r"foreign\.db: this SQLite file is not a smartline "
                                             r"test file \(user_version 0, tables a\)"):
        KIND.open(foreign, read_only=read_only)

    future = tmp_path / "future.db"
    KIND.open(future).close()
    with sqlite3.connect(future) as conn:
        conn.execute("PRAGMA user_version = 4")
    with pytest.raises(SmartlineError, match=r"schema version 4 is not supported \(this "
                                             r"smartline reads and writes version 3\)"):
        KIND.open(future, read_only=read_only)
    assert garbage.read_bytes().startswith(b"no database")  # nothing was written to them


def test_the_error_is_the_callers_kind(tmp_path: Path) -> None:
    kind = SqliteKind(what="journal", version=1, tables=("t",), schema="CREATE TABLE t (x)",
                      synchronous="NORMAL", hint="h", error=RecipeError)
    path = tmp_path / "x.db"
    path.write_bytes(b"junk" * 500)
    with pytest.raises(RecipeError):
        kind.open(path)
    with pytest.raises(SmartlineError, match="cannot open it"):
        kind.open(tmp_path / "no-such-folder" / "x.db")


def test_two_writers_creating_one_file_make_one_schema(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def create() -> None:
        start.wait()
        try:
            KIND.open(path).close()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM a").fetchone()[0] == 1  # schema ran once


def test_an_unversioned_file_of_the_kind_is_adopted_only_where_asked(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # written before the version was recorded
        conn.execute("CREATE TABLE a (x)")
        conn.execute("CREATE TABLE b (y)")
        conn.execute("INSERT INTO a VALUES (7)")
    with pytest.raises(SmartlineError, match="is not a smartline test file"):
        KIND.open(old)
    adopting = SqliteKind(what="test file", version=3, tables=("a", "b"),
                          schema="CREATE TABLE IF NOT EXISTS a (x); "
                                 "CREATE TABLE IF NOT EXISTS b (y)",
                          synchronous="NORMAL", hint="h", adopt_unversioned=True)
    adopting.open(old, read_only=True).close()
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0  # reading wrote nothing
    adopting.open(old).close()
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("SELECT x FROM a").fetchall() == [(7,)]  # its rows kept
    KIND.open(old).close()  # now a version-3 file for everyone
