"""The session server's SQLite store.

Every statement runs on one dedicated worker thread, so the event loop never blocks on the
disk and the connection is only ever touched by the thread that opened it. Jobs run in the
order they were submitted: a read submitted after a write sees that write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from appliance.server.errors import UserExists
from appliance.signaling.messages import CallInfo, UserInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 2
# Version 2: guests (users bound to one session, with an expiry).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    uid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    avatar TEXT,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    session_id TEXT,
    expires_at REAL
);
CREATE TABLE IF NOT EXISTS calls (
    session_id TEXT PRIMARY KEY,
    initiator TEXT NOT NULL,
    initiator_name TEXT NOT NULL,
    receiver TEXT NOT NULL,
    receiver_name TEXT NOT NULL,
    call_type TEXT NOT NULL,
    status TEXT NOT NULL,
    initiated_at REAL NOT NULL,
    joined_at REAL,
    ended_at REAL
);
CREATE INDEX IF NOT EXISTS calls_by_initiator ON calls (initiator, initiated_at);
CREATE INDEX IF NOT EXISTS calls_by_receiver ON calls (receiver, initiated_at);
CREATE TABLE IF NOT EXISTS ended_sessions (
    session_id TEXT PRIMARY KEY,
    ended_at REAL NOT NULL
);
"""

_SELECT_CALLS = (
    "SELECT session_id, initiator, initiator_name, receiver, receiver_name, call_type, "
    "status, initiated_at, joined_at, ended_at FROM calls"
)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    uid: str
    name: str
    avatar: str | None = None
    # A guest: may join this session only, and only until expires_at (or the session ends).
    session_id: str | None = None
    expires_at: float | None = None

    @property
    def is_guest(self) -> bool:
        return self.session_id is not None


_USER_COLUMNS = "uid, name, avatar, session_id, expires_at"


class Store:
    def __init__(self, database: Path | str) -> None:
        self.database = str(database)
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    @property
    def path(self) -> Path | None:
        """The database file, or None for an in-memory database."""
        if self.database == ":memory:" or self.database.startswith("file::memory:"):
            return None
        return Path(self.database)

    # --- running work on the store's thread ----------------------------------------------

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        executor, loop = self._require_executor(), asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self._with_db, job)

    def _submit(self, job: Callable[[sqlite3.Connection], object]) -> None:
        """A write nobody waits for (the call log as calls progress); failures are logged."""
        if self._executor is None:
            log.warning("session store closed; a write was dropped")
            return
        future = self._executor.submit(self._with_db, job)
        future.add_done_callback(_log_failure)

    def _require_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            raise RuntimeError("the store is not open")
        return self._executor

    def _with_db(self, job: Callable[[sqlite3.Connection], T]) -> T:
        assert self._db is not None, "the store is not open"
        return job(self._db)

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callbox-store")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._connect)

    def _connect(self) -> None:
        if (path := self.path) is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _private(path)
        db = sqlite3.connect(self.database, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # the appliance may lose power at any time
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(users)")}
        for column, kind in (("session_id", "TEXT"), ("expires_at", "REAL")):
            if column not in columns:  # a database made by version 1
                db.execute(f"ALTER TABLE users ADD COLUMN {column} {kind}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db = db

    async def close(self) -> None:
        """Waits for every write already submitted, then closes the database."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    def _disconnect(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- meta: secrets generated once ----------------------------------------------------

    async def meta(self, key: str, default: Callable[[], str]) -> str:
        """The stored value of ``key``; stores ``default()`` the first time."""

        def job(db: sqlite3.Connection) -> str:
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, default()))
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return str(row[0])

        return await self._run(job)

    # --- users ---------------------------------------------------------------------------

    async def add_user(self, user: User, auth_token: str) -> None:
        def job(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO users (uid, name, avatar, token_sha256, created_at, "
                    "session_id, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.uid,
                        user.name,
                        user.avatar,
                        token_hash(auth_token),
                        time.time(),
                        user.session_id,
                        user.expires_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise UserExists(user.uid) from None

        await self._run(job)

    async def set_auth_token(self, uid: str, auth_token: str) -> bool:
        """Replaces the user's token; False if there is no such user."""

        def job(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE users SET token_sha256 = ? WHERE uid = ?", (token_hash(auth_token), uid)
            )
            return cursor.rowcount == 1

        return await self._run(job)

    async def remove_user(self, uid: str) -> bool:
        """Deletes the user (its call log stays); False if there is no such user."""

        def job(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM users WHERE uid = ?", (uid,)).rowcount == 1

        return await self._run(job)

    async def user_by_token(self, auth_token: str) -> User | None:
        """The user with this auth token; None for an unknown token or an expired guest."""
        digest = token_hash(auth_token)
        now = time.time()

        def job(db: sqlite3.Connection) -> User | None:
            row = db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE token_sha256 = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (digest, now),
            ).fetchone()
            return User(*row) if row else None

        return await self._run(job)

    async def user(self, uid: str) -> User | None:
        now = time.time()

        def job(db: sqlite3.Connection) -> User | None:
            row = db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE uid = ? "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (uid, now),
            ).fetchone()
            return User(*row) if row else None

        return await self._run(job)

    async def users(self) -> list[User]:
        """Every user but guests."""

        def job(db: sqlite3.Connection) -> list[User]:
            rows = db.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE session_id IS NULL ORDER BY uid"
            ).fetchall()
            return [User(*row) for row in rows]

        return await self._run(job)

    async def remove_guests(self, *, session_id: str | None = None, now: float) -> list[str]:
        """Deletes the guests of ``session_id`` (all sessions when None) and every guest
        expired by ``now``; returns their uids."""

        def job(db: sqlite3.Connection) -> list[str]:
            where = "session_id IS NOT NULL AND (expires_at <= ? OR session_id = ?)"
            rows = db.execute(f"SELECT uid FROM users WHERE {where}", (now, session_id))
            uids = [str(row[0]) for row in rows.fetchall()]
            db.execute(f"DELETE FROM users WHERE {where}", (now, session_id))
            return uids

        return await self._run(job)

    # --- the call log --------------------------------------------------------------------

    def save_call(self, call: CallInfo) -> None:
        values = (
            call.session_id,
            call.initiator.uid,
            call.initiator.name,
            call.receiver.uid,
            call.receiver.name,
            call.call_type,
            call.status,
            call.initiated_at,
            call.joined_at,
            call.ended_at,
        )

        def job(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO calls (session_id, initiator, initiator_name, receiver, "
                "receiver_name, call_type, status, initiated_at, joined_at, ended_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id) DO UPDATE SET status = excluded.status, "
                "joined_at = excluded.joined_at, ended_at = excluded.ended_at",
                values,
            )

        self._submit(job)

    async def calls_of(self, uid: str, limit: int) -> list[CallInfo]:
        """The user's calls, newest first."""

        def job(db: sqlite3.Connection) -> list[CallInfo]:
            rows = db.execute(
                f"{_SELECT_CALLS} WHERE initiator = ? OR receiver = ? "
                "ORDER BY initiated_at DESC, rowid DESC LIMIT ?",
                (uid, uid, limit),
            ).fetchall()
            return [_call_from_row(row) for row in rows]

        return await self._run(job)

    async def call(self, session_id: str) -> CallInfo | None:
        def job(db: sqlite3.Connection) -> CallInfo | None:
            row = db.execute(f"{_SELECT_CALLS} WHERE session_id = ?", (session_id,)).fetchone()
            return _call_from_row(row) if row else None

        return await self._run(job)

    async def close_interrupted_calls(self, now: float) -> int:
        """Calls left ringing or ongoing by a previous run cannot go on: close them."""

        def job(db: sqlite3.Connection) -> int:
            unanswered = db.execute(
                "UPDATE calls SET status = 'unanswered', ended_at = ? WHERE status = 'initiated'",
                (now,),
            ).rowcount
            ended = db.execute(
                "UPDATE calls SET status = 'ended', ended_at = ? WHERE status = 'ongoing'",
                (now,),
            ).rowcount
            return int(unanswered) + int(ended)

        return await self._run(job)

    # --- ended sessions (call tokens issued before the end are refused) ------------------

    def record_session_end(self, session_id: str, ended_at: float) -> None:
        def job(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO ended_sessions (session_id, ended_at) VALUES (?, ?) "
                "ON CONFLICT (session_id) DO UPDATE SET ended_at = excluded.ended_at",
                (session_id, ended_at),
            )

        self._submit(job)

    async def session_ends_since(self, since: float) -> dict[str, float]:
        def job(db: sqlite3.Connection) -> dict[str, float]:
            db.execute("DELETE FROM ended_sessions WHERE ended_at < ?", (since,))
            rows = db.execute("SELECT session_id, ended_at FROM ended_sessions").fetchall()
            return {str(sid): float(at) for sid, at in rows}

        return await self._run(job)


def _call_from_row(row: tuple[object, ...]) -> CallInfo:
    sid, initiator, initiator_name, receiver, receiver_name, kind, status, at, joined, ended = row
    return CallInfo.model_validate(
        {
            "session_id": sid,
            "initiator": UserInfo(uid=str(initiator), name=str(initiator_name)),
            "receiver": UserInfo(uid=str(receiver), name=str(receiver_name)),
            "call_type": kind,
            "status": status,
            "initiated_at": at,
            "joined_at": joined,
            "ended_at": ended,
        }
    )


def _private(path: Path) -> None:
    """The database holds the JWT secret and the admin key: 0600 whatever the umask (its
    -wal and -shm files take the database's mode)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", 0o600)


def _log_failure(future: Future[object]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        log.error("session store write failed", exc_info=error)
