"""The named states of a client's share pairs."""

from __future__ import annotations

from enum import Enum

__all__ = ["SigningShareStatus", "BackupShareStatus"]


class SigningShareStatus(str, Enum):
    """generate/recover: NOT_CREATED → STORED_DATABASE (custodian stored) → STORED_CLIENT."""

    NOT_CREATED = "NOT_CREATED"
    STORED_DATABASE = "STORED_DATABASE"
    STORED_CLIENT = "STORED_CLIENT"


class BackupShareStatus(str, Enum):
    """backup: NOT_CREATED → STORED_CUSTODIAN_BACKUP_SHARE → STORED_CLIENT_BACKUP_SHARE."""

    NOT_CREATED = "NOT_CREATED"
    STORED_CUSTODIAN_BACKUP_SHARE = "STORED_CUSTODIAN_BACKUP_SHARE"
    STORED_CLIENT_BACKUP_SHARE = "STORED_CLIENT_BACKUP_SHARE"
