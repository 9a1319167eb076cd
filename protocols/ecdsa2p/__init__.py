"""Two-party ECDSA on secp256k1 (Lindell 2017 with CGGMP proofs for the Paillier key).

The client is P1 (party 1): it owns a fresh Paillier key per share pair, decrypts, verifies
and receives each signature first; it also owns a long-lived ring-Pedersen setup
(``ClientSetup``, one per device) against which the custodian proves every c3 it sends.
The custodian is P2 (party 2): it holds long-lived
ring-Pedersen parameters (``CustodianSetup``), verifies P1's proofs and does the homomorphic
step (docs/threat-model.md).

Sessions: ``KeygenP1/KeygenP2``, ``SignP1/SignP2`` (P2 optionally with a ``C3Precomputation``:
the custodian's single-use Paillier nonces made ahead), ``ReshareP1/ReshareP2``. One-call helpers
that run both parties in memory: ``keygen``, ``sign``, ``refresh``, ``reshare``.

Example: a share pair, then a signature of a 32-byte digest that verifies under the joint key.
Keygen takes about 1.5 s (the Paillier key and its proofs), so the docs test skips that line and
runs the rest on a pair it made once:

>>> import hashlib
>>> from protocols import ecdsa2p
>>> p1_share, p2_share = ecdsa2p.keygen()  # doctest: +SKIP
>>> p1_share.public_key == p2_share.public_key  # 33-byte compressed Q
True
>>> digest = hashlib.sha256(b"message").digest()
>>> signature = ecdsa2p.sign(p1_share, p2_share, digest)
>>> ecdsa2p.verify_signature(p1_share.public_point, digest, signature)
True
>>> ecdsa2p.recover_public_key(digest, signature) == p1_share.public_point
True
>>> len(signature.to_bytes()), signature.v in (27, 28)
(64, True)

The same with the sans-I/O sessions (P1 the client, P2 the custodian), driven by
``protocols.local.run``; both parties output the same signature:

>>> import secrets
>>> from protocols.local import run
>>> sid = secrets.token_bytes(32)
>>> p1_share, p2_share = run([ecdsa2p.KeygenP1(sid), ecdsa2p.KeygenP2(sid, ecdsa2p.default_setup())])  # doctest: +SKIP
>>> sid = secrets.token_bytes(32)
>>> signature, same = run([ecdsa2p.SignP1(sid, p1_share, digest), ecdsa2p.SignP2(sid, p2_share, digest)])
>>> signature == same
True

``run`` does nothing a transport could not: each session turns received messages into messages
to send, and only bytes (``Message.to_bytes``) cross between them:

>>> from protocols.rounds import Message
>>> sid = secrets.token_bytes(32)
>>> client, custodian = ecdsa2p.SignP1(sid, p1_share, digest), ecdsa2p.SignP2(sid, p2_share, digest)
>>> wire = [m.to_bytes() for m in client.start() + custodian.start()]
>>> while wire:
...     msg = Message.from_bytes(wire.pop(0))
...     party = client if msg.recipient == client.party_id else custodian
...     wire += [m.to_bytes() for m in party.receive(msg)]
>>> client.done and custodian.done and client.result() == custodian.result()
True
"""

from __future__ import annotations

import secrets

from protocols.ecdsa2p.common import CLIENT, CUSTODIAN
from protocols.ecdsa2p.keygen import KeygenP1, KeygenP2
from protocols.ecdsa2p.reshare import ReshareP1, ReshareP2
from protocols.ecdsa2p.setup import (
    ClientSetup,
    ClientSetupPublic,
    CustodianSetup,
    CustodianSetupPublic,
    ProcessDefault,
    default_client_setup,
    generate_setup,
    set_default_client_setup,
    verify_setup,
)
from protocols.ecdsa2p.shares import P1KeyShare, P2KeyShare
from protocols.ecdsa2p.sign import C3Precomputation, DecryptionGuard, PrecomputationSource, SignP1, SignP2
from protocols.ecdsa2p.signature import Signature, recover_public_key, verify_signature
from protocols.local import run
from protocols.zk.params import DEFAULT_LEVEL, LEVEL_112, LEVEL_128, SecurityLevel

__all__ = [
    "CLIENT",
    "CUSTODIAN",
    "CustodianSetup",
    "CustodianSetupPublic",
    "ClientSetup",
    "ClientSetupPublic",
    "default_client_setup",
    "set_default_client_setup",
    "generate_setup",
    "verify_setup",
    "default_setup",
    "set_default_setup",
    "SecurityLevel",
    "LEVEL_112",
    "LEVEL_128",
    "P1KeyShare",
    "P2KeyShare",
    "Signature",
    "verify_signature",
    "recover_public_key",
    "KeygenP1",
    "KeygenP2",
    "SignP1",
    "SignP2",
    "ReshareP1",
    "ReshareP2",
    "C3Precomputation",
    "PrecomputationSource",
    "DecryptionGuard",
    "keygen",
    "sign",
    "refresh",
    "reshare",
]

_CUSTODIAN_DEFAULT = ProcessDefault()


def default_setup(level: SecurityLevel = DEFAULT_LEVEL) -> CustodianSetup:
    """The process-wide custodian setup of ``level``, generated on first use (safe primes: seconds)."""
    return _CUSTODIAN_DEFAULT.get(level)


def set_default_setup(setup: CustodianSetup) -> None:
    """Install the process-wide custodian setup (e.g. one loaded from storage, or test parameters)."""
    _CUSTODIAN_DEFAULT.set(setup)


def _session_id() -> bytes:
    return secrets.token_bytes(32)


def keygen(setup: CustodianSetup | None = None) -> tuple[P1KeyShare, P2KeyShare]:
    """Run keygen for both parties in memory; returns (client share, custodian share)."""
    setup = setup or default_setup()
    sid = _session_id()
    p1, p2 = run([KeygenP1(sid), KeygenP2(sid, setup)])
    return p1, p2


def sign(p1_share: P1KeyShare, p2_share: P2KeyShare, digest32: bytes) -> Signature:
    """Sign a 32-byte digest with both parties in memory; returns the low-s signature.

    >>> digest = bytes(range(32))
    >>> signature = sign(p1_share, p2_share, digest)  # a pair from keygen()
    >>> verify_signature(p1_share.public_point, digest, signature)
    True
    """
    sid = _session_id()
    signature: Signature
    signature, _ = run([SignP1(sid, p1_share, digest32), SignP2(sid, p2_share, digest32)])
    return signature


def reshare(
    p1_share: P1KeyShare,
    p2_share: P2KeyShare,
    *,
    for_signing: bool = True,
    setup: CustodianSetup | None = None,
) -> tuple[P1KeyShare, P2KeyShare]:
    """A new share pair for the same public key; ``for_signing=False`` makes a backup pair."""
    if for_signing:
        setup = setup or default_setup()
    sid = _session_id()
    p1, p2 = run([
        ReshareP1(sid, p1_share, for_signing=for_signing),
        ReshareP2(sid, p2_share, for_signing=for_signing, setup=setup),
    ])
    return p1, p2


def refresh(
    p1_share: P1KeyShare, p2_share: P2KeyShare, setup: CustodianSetup | None = None
) -> tuple[P1KeyShare, P2KeyShare]:
    """Fresh signing shares (and a fresh Paillier key) for the same public key."""
    return reshare(p1_share, p2_share, for_signing=True, setup=setup)
