"""The SQLite files smartline owns — the batch journal, the Sparkplug sample store, the line
history — opened one way: a file of another kind, another schema version or no database at
all is refused with an error naming the file and what to do; a new file gets its schema in
one transaction (two processes creating it at once: one creates, the other sees it); writers
use WAL mode at the synchronous level the file's promise needs."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from ._errors import SmartlineError

__all__ = ["SqliteKind"]


@dataclass(frozen=True, slots=True)
class SqliteKind:
    """One kind of smartline SQLite file.

    ``what`` names it in messages ("batch journal"); ``version`` is the ``PRAGMA
    user_version`` this smartline reads and writes; ``tables`` are tables every file of the
    kind has; ``schema`` the statements that create them; ``hint`` what the user can do
    about a file that is not one ("point --journal elsewhere"); ``error`` builds the
    exception raised (the caller's layer's :class:`SmartlineError`).
    """

    what: str
    version: int
    tables: Collection[str]
    schema: str
    synchronous: Literal["FULL", "NORMAL"]
    hint: str
    error: Callable[[str], SmartlineError] = SmartlineError
    #: a file with every table of the kind but no version (written before the version was
    #: recorded) is taken as this version, and marked so by a writer (its ``schema`` must
    #: then be ``IF NOT EXISTS`` statements: they run over the tables already there)
    adopt_unversioned: bool = False

    def open(self, path: Path, *, read_only: bool = False,
             timeout_s: float = 10.0) -> sqlite3.Connection:
        """A connection (autocommit, usable from any thread) to the file at ``path``;
        ``timeout_s``: how long a statement waits for a lock another connection holds.

        Read-only: the schema is checked, nothing is written (a new, empty file is
        accepted as it is). Otherwise WAL mode and the synchronous level are set and a new
        file gets the schema.
        """
        try:
            if read_only:
                conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                                       timeout=timeout_s, isolation_level=None,
                                       check_same_thread=False)
            else:
                conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None,
                                       check_same_thread=False)
        except sqlite3.Error as exc:
            raise self.error(f"{self.what} {path}: cannot open it: {exc}") from exc
        try:
            new = self._check(conn, path)
            if not read_only:
                self._prepare(conn, path, new)
        except sqlite3.Error as exc:
            conn.close()
            raise self.error(f"{self.what} {path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _check(self, conn: sqlite3.Connection, path: Path) -> bool:
        """Refuse a file of another kind or version; True for a file to give the schema
        and version (new and empty, or adopted)."""
        try:
            conn.execute("BEGIN")  # one snapshot: another process may be creating the file
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                found = {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self.error(f"{self.what} {path}: not an SQLite database ({exc}); "
                             f"{self.hint}") from exc
        if version == 0 and not found:
            return True
        if version not in (0, self.version):
            raise self.error(f"{self.what} {path}: schema version {version} is not supported "
                             f"(this smartline reads and writes version {self.version}); "
                             f"{self.hint}")
        if version == 0 and self.adopt_unversioned and set(self.tables) <= found:
            return True  # the writer marks it (the schema's IF NOT EXISTS leaves it as it is)
        if version == 0 or not set(self.tables) <= found:
            raise self.error(f"{self.what} {path}: this SQLite file is not a smartline "
                             f"{self.what} (user_version {version}, tables "
                             f"{', '.join(sorted(found)) or 'none'}); {self.hint}")
        return False

    def _prepare(self, conn: sqlite3.Connection, path: Path, new: bool) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise self.error(f"{self.what} {path}: the file system refuses WAL mode "
                             f"(journal_mode is {mode})")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        if not new:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) == 0:
                for statement in self.schema.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(self.version)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
