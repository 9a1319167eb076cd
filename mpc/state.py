"""The wallet engine's classes on the session-state allowlist (``protocols.state``).

Importing this module registers every parkable wallet operation session, their results
(``SignResult``, ``EjectedKeys``) and ``KeyLockedError``, so ``Custodian.resume`` / ``Client.resume`` (and ``Session.from_bytes``) can
restore a parked operation. Each operation's collaborators (the custodian facade and its store;
the device's ``Client`` and backup method) are named in its ``_transient`` and given back by
``resume``, never stored.
"""

from __future__ import annotations

from typing import Any

from mpc import client, custodian, presign
from mpc.errors import KeyLockedError
from mpc.wallet import SignResult
from protocols.errors import InvalidMessage
from protocols.state import register_attrs, register_custom, register_dataclass

__all__ = ["ENGINE_SESSIONS"]

ENGINE_SESSIONS = (
    custodian.CustodianGenerate,
    custodian.CustodianBackup,
    custodian.CustodianRecover,
    custodian.CustodianEject,
    custodian.CustodianSign,
    client.ClientGenerate,
    client.ClientBackup,
    client.ClientRecover,
    client.ClientEject,
    presign.CustodianPresign,
    presign.ClientPresign,
)
"""Every wallet operation session class that can be parked. ``client.ClientSign`` is not one of
them: it holds the device's signing nonces, and a device never stores a single-use secret."""


def _encode_locked(exc: KeyLockedError, enc: Any) -> Any:
    return enc.value(exc.message)


def _decode_locked(body: Any, dec: Any) -> KeyLockedError:
    text = dec.value(body)
    if not isinstance(text, str):
        raise InvalidMessage("malformed key-locked error")
    return KeyLockedError(text)


for _cls in ENGINE_SESSIONS:
    register_attrs(_cls)
register_attrs(client.EjectedKeys)
register_dataclass(SignResult)
register_custom(KeyLockedError, "mpc.errors.KeyLockedError", _encode_locked, _decode_locked)
