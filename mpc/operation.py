"""What every wallet operation shares: the two roles' composite sessions and small helpers.

``ClientOperation`` (the device's side) and ``CustodianOperation`` (the service's side) are the
bases of every operation (``mpc.client``, ``mpc.custodian``, ``mpc.signing``, ``mpc.presign``).
The client speaks first with a ``hello`` naming the client and the parameters; the custodian
checks it, takes the client's operation lock at the client's first working message (exclusive
operations only) and releases it when the operation ends. A parked custodian operation carries a
park id, the time and the store's nonce epoch (``Custodian.resume`` uses each park id once).

Rollback safety by construction (docs/threat-model.md, "Rollback"): the custodian runs ``start``
(unless it sends and draws nothing there: it waits for the client's hello)
and every ``receive`` inside ``protocols.randomness.derived(nonce key, transcript)``, the
transcript being a running hash of the client, the operation, the custodian's share and every
peer message accepted so far (this one included). So every secret the custodian draws in a step
is a function of its sealed nonce key and of all the peer input it can meet there: a replay of a
parked copy or of a restored database reproduces the same replies, and another peer input gets
fresh values. The running hash is part of the parked state (it is not secret); the key never is.

This module imports neither facade (``Client``, ``Custodian``): the operations see them through
the small protocols ``Device`` and ``Service`` below (what they use of each), so the modules of
the operations never import each other in a circle.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, TypeVar, cast

from mpc import errors
from mpc.errors import InputInvalid, ShareReplaced
from mpc.storage.keychain import Keychain
from mpc.status import SigningShareStatus
from mpc.storage.store import SQLiteStore
from mpc.wallet import BACKUP_METHODS, CLIENT_PARTY, CURVES, CUSTODIAN_PARTY, PARTIES, ClientView
from protocols.compose import Composite, child_session_id
from protocols.encoding import get_bytes, require_keys
from protocols import randomness
from protocols.ecdsa2p import P2KeyShare, PrecomputationSource
from protocols.errors import InvalidMessage, KeyLocked, MPCError, ProtocolAbort, ShareMismatch, UsageError
from protocols.local import run
from protocols.rounds import Message, Session
from protocols.state import encode_state


class Device(Protocol):
    """What an operation uses of ``mpc.Client``."""

    client_id: str
    keychain: Keychain

    def signing_share(self, curve: str) -> Any:
        """The device's signing share on ``curve`` (``Client.signing_share``)."""

    def _entry(self, curve: str) -> str: ...


class Precomputations(Protocol):
    """What operations use of the custodian's in-memory ECDSA precomputation pool
    (``mpc.presign.PrecomputationPool``; declared here so that ``mpc.presign``, an operation
    module, is not imported back)."""

    def fill(self, client_id: str, share: P2KeyShare, count: int) -> int:
        """Make ``count`` precomputations for ``share``; how many the client's pool holds now."""

    def source(self, client_id: str, share: P2KeyShare) -> PrecomputationSource:
        """A ``SignP2`` source that pops one precomputation for ``share`` in round 3."""


class Service(Protocol):
    """What an operation uses of ``mpc.Custodian``."""

    store: SQLiteStore

    @property
    def nonce_prf(self) -> randomness.DerivationKey:
        """The nonce key made ready for ``randomness.derived`` (``Custodian.nonce_prf``)."""

    @property
    def precomputations(self) -> Precomputations:
        """The custodian's in-memory ECDSA precomputation pool (``mpc.presign``)."""

    def get_client(self, client_id: str) -> ClientView:
        """The custodian's view of the client (``Custodian.get_client``)."""

    def _load_share(self, client_id: str, kind: str, method: str, curve: str) -> Any: ...

    def _check_free(self, client_id: str) -> None: ...

    def _acquire(self, client_id: str, operation: str, holder: str | None = None) -> None: ...

    def _release(self, client_id: str, holder: str | None = None) -> None: ...

__all__ = ["ClientOperation", "Operation", "run_local", "CustodianOperation", "Device", "Service", "Precomputations",
           "hello_mismatch", "method_name",
           "new_session_id"]


_RNG_TAG = b"portal-mpc/custodian-rng/v1"


def _chain(*parts: bytes) -> bytes:
    """SHA-256 over the length-prefixed parts (a link of the running transcript hash), hashed in
    one call."""
    return hashlib.sha256(b"".join([len(part).to_bytes(8, "big") + part for part in parts])).digest()


_LINK_PREFIX = (32).to_bytes(8, "big")  # the length prefix of a link's first part: a SHA-256 digest


def _initial_transcript(client_id: bytes, protocol: bytes, salt: bytes) -> bytes:
    """The transcript hash an operation starts from (``CustodianOperation._rng_context``)."""
    return _chain(_RNG_TAG, client_id, protocol, salt)


def _link(current: bytes, message: bytes) -> bytes:
    """``_chain(current, message)`` for a ``current`` transcript hash (32 bytes), in one
    expression: the running hash advanced by one accepted peer message."""
    if len(current) != 32:
        return _chain(current, message)
    return hashlib.sha256(_LINK_PREFIX + current + len(message).to_bytes(8, "big") + message).digest()


def new_session_id(session_id: bytes | None) -> bytes:
    """The caller's session id, or a fresh random one."""
    return session_id if session_id is not None else secrets.token_bytes(32)


def method_name(method: str) -> str:
    """A backup method's name, refused (``InputInvalid``) unless it is one of ``BACKUP_METHODS``."""
    if method not in BACKUP_METHODS:
        raise InputInvalid(f"unknown backup method; expected one of {', '.join(BACKUP_METHODS)}")
    return method


class ClientOperation(Composite):
    """A client (device) operation: a composite session whose collaborator is the ``Client``."""

    _transient: ClassVar[tuple[str, ...]] = ("client",)  # not state: given back by Client.resume

    def __init__(self, client: Device, session_id: bytes) -> None:
        super().__init__(session_id, CLIENT_PARTY, PARTIES)
        self.client = client

    def _child_id(self, name: str) -> bytes:
        return child_session_id(self.session_id, name)

    # The client speaks first: "hello" names the client and the operation's parameters.
    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client.client_id}

    def _begin(self) -> list[Message]:
        return [self._step("hello", self._hello())] + self._start()

    def _start(self) -> list[Message]:
        raise NotImplementedError

    def _shares(self) -> dict[str, Any]:
        return {curve: self.child(curve).result() for curve in CURVES}


class CustodianOperation(Composite):
    """A custodian operation: a composite session that stores its outcome and errors as engine errors."""

    operation = "operation"
    exclusive = True
    # Whether the client sends each message only once it has every message this party sent
    # before it (a sign: ``mpc.signing.CustodianSign``); then a client that resumes lacks at most
    # the last step's messages, which is all the service parks for it (``mpc.service.worker``).
    alternates = False
    _transient = ("custodian", "store")  # not state: given back by Custodian.resume

    def __init__(self, custodian: Service, client_id: str, session_id: bytes | None) -> None:
        super().__init__(session_id, CUSTODIAN_PARTY, PARTIES)
        self.custodian = custodian
        self.store = custodian.store
        self.client_id = client_id
        self._holds_lock = False
        # 32 fresh bytes per operation, parked with it: the custodian's randomness is unique to
        # this operation whatever of its own state changed (a new share, a new backup key), while
        # a replay of this parked operation, restored or copied, still reproduces its replies.
        self._rng_salt = secrets.token_bytes(32)
        if self.exclusive:
            custodian._check_free(client_id)

    def _resume(self, context: Mapping[str, Any]) -> None:
        custodian = context.get("custodian")
        if custodian is None or not hasattr(custodian, "store"):
            raise UsageError("resuming a custodian operation needs custodian=...")
        self.custodian, self.store = custodian, custodian.store

    def _child_id(self, name: str) -> bytes:
        return child_session_id(self.session_id, name)

    def to_bytes(self, *, nonce_epoch: int | None = None) -> bytes:
        """The parked state, tagged with a fresh park id, the time and the store's nonce epoch:
        ``Custodian.resume`` resumes each park id once and only in the same epoch, so a copy of
        the blob (or a restored database) can never run the same nonces twice. ``nonce_epoch``:
        the epoch to tag it with instead of the store's read now (the service's optimistic step:
        the epoch of the park it ran on, which its commit checks is still the store's)."""
        self._park_id = secrets.token_hex(16)
        self._parked_at = int(time.time())
        self._park_epoch = self.store.nonce_epoch() if nonce_epoch is None else nonce_epoch
        return encode_state(self, self.share_references())

    def share_references(self) -> list[tuple[Any, tuple[str, ...]]]:
        """The shares of this operation its parked state names instead of carrying them
        (``protocols.state``, References): none here; a sign names its signing share
        (``mpc.signing.CustodianSign``), which ``Custodian._decode`` loads from the store again."""
        return []

    @property
    def park_tag(self) -> tuple[str, int, int] | None:
        """The park id, time and nonce epoch the last ``to_bytes`` (or the resumed blob) tagged
        this state with, or None if it carries none."""
        tag = tuple(getattr(self, name, None) for name in ("_park_id", "_parked_at", "_park_epoch"))
        park_id, at, epoch = tag
        if isinstance(park_id, str) and all(isinstance(v, int) and not isinstance(v, bool) for v in (at, epoch)):
            return tag  # type: ignore[return-value]
        return None

    # --- rollback safety by construction (docs/threat-model.md, "Rollback") ----------------------
    def _rng_context(self, msg: Message | None) -> bytes:
        """The running transcript hash, advanced by ``msg`` (not stored: see ``receive``).

        Initially SHA-256 over the domain tag, the client id, the operation's protocol and the
        operation's salt; each accepted peer message advances it by its canonical bytes."""
        current: bytes | None = getattr(self, "_rng_transcript", None)
        if current is None:
            current = _initial_transcript(self.client_id.encode(), self.protocol.encode(), self._rng_salt)
        return current if msg is None else _link(current, msg.to_bytes())

    def start(self) -> list[Message]:
        """``Composite.start`` inside the derived-randomness scope of the initial transcript; an
        operation whose custodian waits for the client's hello (its ``_begin`` is this class's,
        which sends and draws nothing) starts without entering one."""
        context = self._rng_context(None)
        if type(self)._begin is CustodianOperation._begin:
            messages = super().start()
        else:
            with randomness.derived(self.custodian.nonce_prf, context):
                messages = super().start()
        self._rng_transcript = context
        return messages

    def receive(self, msg: Message) -> list[Message]:
        """Run the step inside ``randomness.derived(nonce key, transcript)``: every secret the
        custodian draws in it is a function of its nonce key and every peer message so far,
        this one included. A replay (of a parked copy, or after a database restore) reproduces
        the same replies; any other peer input gives fresh values. The transcript advances only
        when the message is accepted (a rejected one changes nothing)."""
        if not isinstance(msg, Message):
            raise InvalidMessage("not a Message")
        before, current = self._next_from_peer, getattr(self, "_rng_transcript", None)
        context = self._rng_context(msg) if current is None else _link(current, msg.to_bytes())  # (one call less)
        try:
            with randomness.derived(self.custodian.nonce_prf, context):
                return self._receive_locked(msg)
        finally:
            if self._next_from_peer != before:  # accepted (``Composite._accepted``)
                self._rng_transcript = context

    def _receive_locked(self, msg: Message) -> list[Message]:
        # The per-client lock is taken at the client's first message after its hello (a session
        # whose client never gets going, e.g. cannot decrypt its backup, holds nothing) and is
        # released when the operation ends.
        # A password guess ("oprf") takes no lock either: a wrong password must not block the
        # next try; the guess is counted instead (``mpc.backup.attempts``).
        newly = (self.exclusive and not self._holds_lock and not self.done and self.aborted is None
                 and isinstance(msg, Message) and msg.payload.get("step") not in ("hello", "oprf"))
        if newly:
            self.custodian._acquire(self.client_id, self.operation, self.session_id.hex())  # the lock names its holder
            self._holds_lock = True
        try:
            return super().receive(msg)
        except (ProtocolAbort, KeyLocked, ShareReplaced):
            self._end()
            raise
        except ShareMismatch as exc:
            if self.protocol in _SIGNING_SHARE_PROTOCOLS:  # the device signs or backs up with stale shares
                self._end()
                raise ShareReplaced("this device's secp256k1 signing share is not the client's current one (a "
                                    "recover replaced it): wipe this device and recover onto it, or use the "
                                    "device that recovered") from exc
            if newly:
                self._end()
            raise
        except InvalidMessage:
            if newly:  # a rejected message changes nothing, not even the lock
                self._end()
            raise

    def _end(self) -> None:
        if self._holds_lock:
            self.custodian._release(self.client_id, self.session_id.hex())
            self._holds_lock = False

    def _complete(self, result: Any) -> None:
        self._end()
        self._finish(result)

    # The client speaks first: its "hello" names the client and the operation's parameters.
    def _begin(self) -> list[Message]:
        return []

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client_id}

    def _start(self) -> list[Message]:
        raise NotImplementedError

    def _decode_step(self, name: str, data: Mapping[str, Any], sender: int) -> Any:
        if name == "hello" and not self._children and self._next_from_peer == 1:
            expected = self._expected_hello(data)
            if dict(data) != expected:
                raise InvalidMessage(hello_mismatch(data, expected))
            return expected
        if name == "stored" and self._children_done and self._expects_stored:
            # Compare with what the store holds now: a retried operation may have replaced the shares.
            record = self.store.client(self.client_id)
            stored = {"secp256k1": (record.secp256k1_public or b"").hex(), "ed25519": (record.ed25519_public or b"").hex()}
            if stored != self._public or not self._shares_still_current():
                raise ShareReplaced("the shares of this operation were replaced by a later generate or recover "
                                    "that completed first: wipe this device, then recover onto it or use the "
                                    "device whose operation completed")
            self._decode_stored(data, self._public)
            return None
        return self._decode_other_step(name, data)

    def _expected_hello(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The hello this session accepts (an operation that takes a parameter from the
        client's hello, such as the backup method, fills it in from ``data`` here)."""
        return self._hello()

    def _on_hello(self, hello: Mapping[str, Any]) -> None:
        """The client's hello was accepted (``hello`` is what ``_expected_hello`` returned)."""

    def _decode_other_step(self, name: str, data: Mapping[str, Any]) -> Any:
        raise InvalidMessage(f"unexpected step {name!r}")

    def _on_step(self, name: str, value: Any, sender: int) -> list[Message]:
        if name == "hello":
            self._on_hello(value)
            return self._start()
        if name == "stored":
            self.store.update_client(self.client_id, signing_share_status=SigningShareStatus.STORED_CLIENT.value,
                                     has_wallet=1)
            self._complete(self.custodian.get_client(self.client_id))
            return []
        return self._on_other_step(name, value)

    def _on_other_step(self, name: str, value: Any) -> list[Message]:
        raise InvalidMessage(f"unexpected step {name!r}")

    _expects_stored = False
    _public: dict[str, str] = {}

    def _shares_still_current(self) -> bool:
        """Whether the signing shares this operation stored are still the store's (a recover
        keeps the public keys, so a later recover is seen only in the shares themselves)."""
        return True

    def _decode_stored(self, data: Mapping[str, Any], expected: Mapping[str, str]) -> None:
        require_keys(data, CURVES)
        for curve in CURVES:
            if get_bytes(data, curve).hex() != expected[curve]:
                raise InvalidMessage("the client stored shares of other public keys")


# Operations in which the client presents its current signing share (a mismatch: a replaced device).
_SIGNING_SHARE_PROTOCOLS = ("wallet/sign", "wallet/backup")

# Parameters of an operation's hello that are public and short: a mismatch names both values.
_SHOWN_PARAMETERS = {
    "client_id": "client {asked}, the custodian session is for client {expected}",
    "method": "backup method {asked}, the custodian session was opened for {expected}",
    "client_stores_backup": "client_stores_backup={asked}, the custodian session was opened with {expected}",
    "chain": "a signature on {asked}, the custodian session was opened for {expected}",
    "count": "{asked} precomputations, the custodian session was opened for {expected}",
}


def _shown(value: Any) -> str:
    """A value the client sent, as short printable text (it comes from the peer: never trusted)."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text[:41])
    return text if len(text) <= 40 else text[:40] + "…"


def hello_mismatch(asked: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """Why the client's hello ``asked`` is not the ``expected`` one: each parameter that differs,
    with both values for the public ones in ``_SHOWN_PARAMETERS`` (never a share or the data)."""
    reasons = []
    for key in expected:
        if key not in asked:
            reasons.append(f"the client's hello has no {key}")
        elif asked[key] != expected[key]:
            template = _SHOWN_PARAMETERS.get(key)
            if template is not None:
                detail = template.format(asked=_shown(asked[key]), expected=_shown(expected[key]))
                reasons.append(f"the client asks for {detail}")
            elif key == "data_sha256":
                reasons.append("the client asks to sign other data than the custodian session was opened for "
                               "(their SHA-256 differ)")
            else:
                reasons.append(f"the client's {key} differs from the custodian session's")
    reasons += [f"the client's hello has an unknown field {_shown(key)}" for key in asked if key not in expected]
    return "; ".join(reasons) or "the client asks for another operation, client or parameters"


# --- running one operation in memory (exported as mpc.Operation, mpc.run_local) ----------------------
R_co = TypeVar("R_co", covariant=True)
A = TypeVar("A")
B = TypeVar("B")


class Operation(Protocol[R_co]):
    """A session whose ``result()`` is an ``R_co``: every ``Session`` (``result()`` is ``Any``), and
    the operations of ``Client`` and ``Custodian`` that declare their result type
    (``client.sign(...)``: a ``SignResult``)."""

    @property
    def done(self) -> bool:
        """Whether the operation has finished (``Session.done``)."""

    def start(self) -> list[Message]:
        """The party's first messages (``Session.start``)."""

    def receive(self, msg: Message) -> list[Message]:
        """Consume one message; returns what is now ready to send (``Session.receive``)."""

    def result(self) -> R_co:
        """The operation's result once it is done (``Session.result``)."""


def run_local(client_session: Operation[A], custodian_session: Operation[B]) -> tuple[A, B]:
    """Drive one operation's two sessions in memory; returns (client result, custodian result),
    typed by the sessions' ``result()`` (``run_local(client.sign(...), custodian.sign(...))`` is
    a ``tuple[SignResult, SignResult]``).

    Protocol-level failures surface as engine errors (``mpc.errors``) with stable codes.
    """
    if not isinstance(client_session, Session) or not isinstance(custodian_session, Session) \
            or isinstance(client_session, CustodianOperation) or isinstance(custodian_session, ClientOperation):
        raise errors.InputInvalid("run_local takes the two sessions of one operation (client first, then custodian)")
    try:
        client_result, custodian_result = run([client_session, custodian_session])
    except errors.EngineError:
        raise
    except MPCError as exc:
        raise errors.from_protocol_error(exc) from exc
    return cast(A, client_result), cast(B, custodian_result)
