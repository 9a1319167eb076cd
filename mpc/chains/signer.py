"""What the chain adapters sign with: a ``Signer`` and the checks applied to what it returns.

A ``Signer`` is anything with ``public_key(curve)`` and ``sign(chain, data) -> SignResult``; the
adapters never see shares or sessions. ``local_signer(client, custodian, client_id)`` runs the
wallet's two-party sign operation in memory (``mpc.run_local``); ``remote_signer(remote, device,
token)`` runs it against a networked custodian (``mpc.remote.blocking.RemoteCustodian``: the
device here, the custodian's half in the service). Any other transport supplies its own ``Signer``.

``sign_checked`` (and its typed forms ``sign_ecdsa`` → ``protocols.ecdsa2p.Signature`` and
``sign_ed25519`` → 64 bytes, which the adapters use) does not trust the signer blindly: the result must be for the requested chain and
curve, come from the wallet's public key, and verify. For secp256k1 the public key *recovered*
from (r, s, recid) must be the wallet's key: this proves the signature and the recovery id at once
(a wrong recid would make Ethereum's and Tron's ecrecover derive another account). Only low-s
signatures with recid 0 or 1 are accepted, since that is all Ethereum's ``v`` and Tron's 65-byte
form can carry (recid 2/3 needs R.x ≥ q, probability about 2^-128).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from curves import secp256k1
from curves.errors import CurveError
from mpc.errors import InputInvalid, SignFailed
from mpc.wallet import SignResult, curve_of_chain
from protocols.ecdsa2p.signature import HALF_Q, Signature, recover_public_key
from protocols.errors import InvalidMessage

if TYPE_CHECKING:
    from mpc.client import Client
    from mpc.custodian import Custodian

__all__ = ["Signer", "LocalSigner", "local_signer", "RemoteSigner", "SigningService", "remote_signer", "sign_checked",
           "sign_ecdsa", "sign_ed25519"]


@runtime_checkable
class Signer(Protocol):
    """The wallet as the adapters see it."""

    def public_key(self, curve: str) -> bytes:
        """The wallet's public key on ``curve`` (33-byte compressed secp256k1 or 32-byte ed25519)."""
        ...

    def sign(self, chain: str, data: bytes) -> SignResult:
        """Sign ``data`` for ``chain``: a 32-byte digest (secp256k1 chains) or the message (ed25519)."""
        ...


@dataclass(frozen=True)
class LocalSigner:
    """A ``Signer`` running both parties in this process (``mpc.run_local``)."""

    client: Client
    custodian: Custodian
    client_id: str
    path: str | None = None  # an HD path (docs/hd.md); None: the wallet's root keys

    def public_key(self, curve: str) -> bytes:
        """The public key on ``curve`` at the signer's path, from the client's shares and accounts."""
        return self.client.public_key(curve, self.path)

    def sign(self, chain: str, data: bytes) -> SignResult:
        """Run ``client.sign`` and ``custodian.sign`` in memory; returns the client's ``SignResult``."""
        from mpc import run_local  # mpc imports nothing from mpc.chains; keep it that way

        client_result: SignResult
        client_result, _ = run_local(self.client.sign(chain, data, path=self.path),
                                     self.custodian.sign(self.client_id, chain, data, path=self.path))
        return client_result


def local_signer(client: Client, custodian: Custodian, client_id: str, path: str | None = None) -> LocalSigner:
    """A ``Signer`` for a client device and its custodian in the same process; with ``path``,
    the adapters build and sign for the key at that HD path (its account derived first)."""
    return LocalSigner(client, custodian, client_id, path)


class SigningService(Protocol):
    """What ``RemoteSigner`` uses of ``mpc.remote.blocking.RemoteCustodian`` (this package imports
    no transport: anything with this ``sign`` will do)."""

    def sign(self, client: Client, token: str, chain: str, data: bytes, *,
             path: str | None = None) -> tuple[SignResult, SignResult]:
        """Run the wallet's sign operation with the custodian service (``RemoteCustodian.sign``)."""
        ...


@dataclass(frozen=True)
class RemoteSigner:
    """A ``Signer`` whose custodian half runs in a networked custodian service: the device
    (``client``, holding its shares) signs with ``remote`` and the client's ``token``. The token
    is fixed: after a recover or eject (which replace it) make a new signer with the new one."""

    remote: SigningService
    client: Client
    token: str
    path: str | None = None  # an HD path (docs/hd.md); None: the wallet's root keys

    def __repr__(self) -> str:  # the token is a credential
        return f"RemoteSigner(remote={self.remote!r}, client_id={self.client.client_id!r}, path={self.path!r})"

    def public_key(self, curve: str) -> bytes:
        """The public key on ``curve`` at the signer's path, from the device's shares and accounts."""
        return self.client.public_key(curve, self.path)

    def sign(self, chain: str, data: bytes) -> SignResult:
        """``remote.sign(client, token, chain, data, path=...)``; returns the device's ``SignResult``."""
        result, _ = self.remote.sign(self.client, self.token, chain, data, path=self.path)
        return result


def remote_signer(remote: SigningService, device: Client, token: str, path: str | None = None) -> RemoteSigner:
    """A ``Signer`` for a device signing with a networked custodian (a ``RemoteCustodian``).

    Example::

        remote = RemoteCustodian("wss://custodian.example:8765", cafile="ca.crt")
        signed = evm.sign_transaction(remote_signer(remote, device, token), tx)
    """
    if not isinstance(token, str) or not token:
        raise InputInvalid("remote_signer needs the client's token (a non-empty string)")
    return RemoteSigner(remote, device, token, path)


def _sign_matching(signer: Signer, chain: str, data: bytes) -> tuple[SignResult, bytes]:
    """Sign and check that the result claims the right chain, curve and the wallet's key."""
    if not isinstance(signer, Signer):
        raise InputInvalid("signer must have public_key(curve) and sign(chain, data)")
    curve = curve_of_chain(chain)
    if curve == "secp256k1" and len(data) != 32:
        raise InputInvalid("a secp256k1 chain signs a 32-byte digest")
    expected_key = bytes(signer.public_key(curve))
    result = signer.sign(chain, bytes(data))
    if not isinstance(result, SignResult) or result.chain != chain or result.curve != curve:
        raise SignFailed(f"the signer returned no {curve} signature for {chain}")
    if result.public_key != expected_key or len(result.signature) != 64:
        raise SignFailed("the signature is not from the wallet's key")
    return result, expected_key


def sign_checked(signer: Signer, chain: str, data: bytes) -> SignResult:
    """``signer.sign(chain, data)``, refused (``SignFailed``) unless it is the wallet's valid signature."""
    result, public_key = _sign_matching(signer, chain, data)
    if result.curve == "secp256k1":
        _check_ecdsa(result, public_key, data)
    else:
        _check_ed25519(result, public_key, data)
    return result


def sign_ecdsa(signer: Signer, chain: str, digest: bytes) -> Signature:
    """The checked low-s (r, s, recid ∈ {0, 1}) signature of a 32-byte digest on a secp256k1 chain."""
    if curve_of_chain(chain) != "secp256k1":
        raise InputInvalid(f"{chain} does not sign with secp256k1")
    result, public_key = _sign_matching(signer, chain, digest)
    return _check_ecdsa(result, public_key, digest)


def sign_ed25519(signer: Signer, chain: str, message: bytes) -> bytes:
    """The checked 64-byte ed25519 signature of ``message`` on an ed25519 chain."""
    if curve_of_chain(chain) != "ed25519":
        raise InputInvalid(f"{chain} does not sign with ed25519")
    result, public_key = _sign_matching(signer, chain, message)
    _check_ed25519(result, public_key, message)
    return result.signature


def _check_ecdsa(result: SignResult, public_key: bytes, digest: bytes) -> Signature:
    r, s, recid = result.r, result.s, result.recid
    if not (isinstance(r, int) and isinstance(s, int) and recid in (0, 1)) or s > HALF_Q:
        raise SignFailed("the signature is not a low-s ECDSA signature with recid 0 or 1")
    if result.signature != r.to_bytes(32, "big") + s.to_bytes(32, "big"):
        raise SignFailed("the signature bytes do not match r and s")
    try:
        recovered = recover_public_key(digest, Signature(r, s, recid))  # recid 0/1 and low-s checked above
        wallet_point = secp256k1.decode_point(public_key)
    except (InvalidMessage, CurveError):
        raise SignFailed("the signature does not recover to a public key") from None
    if recovered != wallet_point:
        raise SignFailed("the signature does not recover to the wallet's key")
    return Signature(r, s, recid)


def _check_ed25519(result: SignResult, public_key: bytes, message: bytes) -> None:
    try:
        VerifyKey(public_key).verify(message, result.signature)
    except (BadSignatureError, ValueError, TypeError):
        raise SignFailed("the ed25519 signature does not verify under the wallet's key") from None
