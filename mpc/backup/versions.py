"""Versioned backups on the custodian: a new backup never removes the last complete one.

Every backup attempt gets a fresh *version* (16 hex digits). Its custodian backup shares, the
client's encrypted backup shares (box and key record), for ``PASSWORD`` the custodian's VOPRF
key and, when the customer keeps the boxes, what its confirmation must prove are stored under the *storage name* ``<METHOD>.<version>`` (the ``method`` column of the
store's ``shares`` and ``client_backups`` tables; a self-managed backup hands its shares to the
webhook under that name). Table ``backup_versions`` (created on first use) says, per client and
method, which version is *current* (complete: its client share is stored) and which one is
*pending* (an attempt in progress).

- The reshare of a backup writes the pending version (an older pending attempt, abandoned, is
  discarded first); the current version is untouched.
- The step that completes the backup (the client's encrypted shares arrive, or the customer
  confirms it stored them) *promotes* the pending version in one transaction: it becomes current,
  the previous current version is deleted, the status becomes STORED_CLIENT_BACKUP_SHARE.
- Recover and eject always read the current version. A backup interrupted at any step (device or
  custodian killed) therefore leaves the previous complete backup recoverable.

The status shown for a method (``backups`` table) is the current version's when there is one;
a first backup in progress shows its own (STORED_CUSTODIAN_BACKUP_SHARE). Rows stored before
versioning (no ``backup_versions`` row) are read as version ``""``: storage name = method.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from mpc.errors import StateInvalid
from mpc.status import BackupShareStatus
from mpc.storage.store import SQLiteStore

__all__ = ["BackupVersions", "Versions", "new_version", "storage_name", "OPRF_KEY_ROW", "CONFIRMATION_ROW"]

OPRF_KEY_ROW = "oprf-p256"  # the "curve" under which a PASSWORD version's VOPRF key is stored
# The "curve" under which a customer-kept version records what its confirmation must prove
# (session id, nonce, the new public client shares: ``Custodian.stored_client_backup_share``).
CONFIRMATION_ROW = "confirmation"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS backup_versions (
    client_id TEXT NOT NULL REFERENCES clients(client_id),
    method TEXT NOT NULL,
    current TEXT NOT NULL,
    pending TEXT,
    pending_self_managed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (client_id, method)
)
"""


def new_version() -> str:
    """A fresh version id: 16 hex digits from ``secrets``."""
    return secrets.token_hex(8)


def storage_name(method: str, version: str) -> str:
    """Where a version's rows live (the legacy, unversioned layout: the method itself)."""
    return f"{method}.{version}" if version else method


@dataclass(frozen=True)
class Versions:
    """A client's versions of one method: ``current`` ("" if none or legacy), ``pending``."""

    current: str
    pending: str | None
    pending_self_managed: bool


class BackupVersions:
    """The version bookkeeping of ``store`` (same database and transactions)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        with store.transaction():
            store._execute(_SCHEMA)

    def of(self, client_id: str, method: str) -> Versions:
        """The client's current and pending versions of ``method`` (none yet: ``current`` is "")."""
        row = self.store._execute(
            "SELECT current, pending, pending_self_managed FROM backup_versions WHERE client_id = ? AND method = ?",
            (client_id, method)).fetchone()
        return Versions("", None, False) if row is None else Versions(row[0], row[1], bool(row[2]))

    def current_name(self, client_id: str, method: str) -> str:
        """The storage name of the complete backup recover and eject read."""
        return storage_name(method, self.of(client_id, method).current)

    def pending_name(self, client_id: str, method: str) -> str | None:
        """The storage name of the pending (unfinished) backup of ``method``, or None."""
        pending = self.of(client_id, method).pending
        return None if pending is None else storage_name(method, pending)

    def start(self, client_id: str, method: str, version: str, self_managed: bool) -> str:
        """Record ``version`` (from :func:`new_version`) as pending, discarding an abandoned
        pending attempt; returns its storage name. Call inside the transaction that writes the
        version's rows."""
        self.store.lock_client(client_id)
        versions = self.of(client_id, method)
        if versions.pending is not None and versions.pending != version:
            self._delete_rows(client_id, storage_name(method, versions.pending))
        self._save(client_id, method, versions.current, version, self_managed)
        return storage_name(method, version)

    def promote(self, client_id: str, method: str, version: str | None = None) -> Versions | None:
        """Make the pending version current (deleting the previous one) and mark the method
        STORED_CLIENT_BACKUP_SHARE, in one transaction. Returns the versions before (the caller
        may tell a webhook to drop the old one), None if nothing was pending.

        With ``version`` (the backup operation that made it and checked the client's proof of
        its new shares against it), only that version is promoted: if a later attempt replaced
        it meanwhile, ``StateInvalid`` and nothing changes (the rows the client's boxes belong to
        are gone; promoting the other attempt's version would pair it with the wrong boxes); if
        it is current already, nothing to do."""
        with self.store.transaction():
            self.store.lock_client(client_id)
            versions = self.of(client_id, method)
            if version is not None and versions.pending != version:
                if versions.current == version:  # promoted already: the same step delivered twice
                    return None
                raise StateInvalid("this backup's version was replaced by a later backup attempt: "
                                   "run the backup again")
            if versions.pending is None:
                return None
            if versions.current != versions.pending:
                self._delete_rows(client_id, storage_name(method, versions.current))
            self._save(client_id, method, versions.pending, None, False)
            self.store.set_backup(client_id, method, BackupShareStatus.STORED_CLIENT_BACKUP_SHARE.value,
                                  versions.pending_self_managed)
        return versions

    def _save(self, client_id: str, method: str, current: str, pending: str | None, self_managed: bool) -> None:
        self.store._execute("INSERT OR REPLACE INTO backup_versions VALUES (?, ?, ?, ?, ?)",
                            (client_id, method, current, pending, int(self_managed)))

    def _delete_rows(self, client_id: str, name: str) -> None:
        self.store.delete_shares(client_id, "backup", name)
        self.store._execute("DELETE FROM client_backups WHERE client_id = ? AND method = ?", (client_id, name))
