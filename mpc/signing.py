"""The ``sign`` operation, both roles side by side (README.md, "The wallet engine").

Steps::

  client     hello (client, chain, SHA-256 of the data, the client's public share: Q1 or its FROST
             verifying share) → the child session of the chain's curve
  custodian  checks the hello (a device whose shares a recover replaced gets ``SHARE_REPLACED``
             here, before any protocol work), then its child: ECDSA P2, which takes a
             precomputation from this process's in-memory pool in its round 3 if the pool has
             one (``mpc.presign``), or the FROST responder
  secp256k1  two-party ECDSA (``protocols.ecdsa2p.sign``): the custodian proves c3 (Π_c3); the
             client verifies it, marks "decryption in flight" in its keychain, decrypts, checks
             the signature (a failure despite the proof locks the share for good, persisted)
  ed25519    FROST in one round trip (``protocols.frost.round_trip``): fresh nonces on both
             sides, none stored
  result     ``SignResult`` on both sides (the client has it first)

Framing (docs/architecture.md, "The sign operation's channel"): a sign has one child and one
step of its own (the hello), and its child's rounds alternate between the two parties, one
message each; so its messages are the child's own: the child's protocol (``sign_protocol``),
the operation's session id (the child runs under it: there is no other child to keep apart),
the child's rounds and payloads, checked by the child's own envelope check. The client's first
message carries the hello beside its child's first payload: one more field, ``hello``, its
values as one text (``hello_text``: client id, chain, SHA-256 of the data, client share, with a
path the path and child key, joined by spaces), which the custodian compares with its own hello's
text (and reads field by field only to say what differs, ``parse_hello``). Three messages for
FROST, as the protocol alone sends, each built, encoded and parsed once; only the first one is
made again on each side (joined, then split).

The client's side is not parkable: it holds the device's nonces, and a device never stores a
single-use secret. A decryption marker left by a crash (older than
``DECRYPTION_MARKER_SECONDS``) locks the ECDSA share at the next signing operation.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Mapping
from typing import Any, Callable

from mpc.errors import InputInvalid, KeyLockedError, ShareReplaced, StateInvalid, WalletNotFound, from_protocol_error
from mpc.operation import ClientOperation, CustodianOperation, Device, Service
from mpc.wallet import CLIENT_PARTY, CUSTODIAN_PARTY, SignResult, curve_of_chain
from curves import Point, group_by_name
from mpc import hd
from protocols import ecdsa2p, frost
from protocols.encoding import get_point
from protocols.compose import Composite
from protocols.errors import FutureMessage, InvalidMessage, KeyLocked, MPCError, UsageError
from protocols.frozen import frozen
from protocols.rounds import Message, Session
from protocols.state import register_attrs


__all__ = [
    "ClientSign",
    "CustodianSign",
    "sign_hello",
    "first_payload",
    "split_first_payload",
    "hello_text",
    "sign_hello_text",
    "parse_hello",
    "sign_protocol",
    "sign_data",
    "client_share_id",
    "share_digest",
    "SHARE_REFERENCE",
    "sign_child",
    "sign_result",
    "path_tweak",
    "lock_after_interrupted_decryptions",
    "DECRYPTION_MARKER_SECONDS",
]


def sign_hello(client_id: str, chain: str, data: bytes, client_share: str,
               child: tuple[str, bytes] | None = None) -> dict[str, Any]:
    """What both parties must agree on before signing: client, chain, SHA-256 of the data and the
    client's public share (``client_share_id``: so a device whose shares were replaced is told so);
    with an HD path, the path and the child public key each side computed (docs/hd.md)."""
    hello = {"client_id": client_id, "chain": chain, "data_sha256": hashlib.sha256(data).hexdigest(),
             "client_share": client_share}
    if child is not None:
        hello.update(path=child[0], child_key=child[1].hex())
    return hello


def path_tweak(account: Callable[[str, str], Any], curve: str, path: str | None) -> tuple[str, Point, int] | None:
    """(canonical path, child key, whole tweak) of ``path`` on ``curve`` from the side's derived
    ``account(curve, account_path)``; None for the root key. ``PathInvalid``, ``AccountNotDerived``."""
    if path is None:
        return None
    parsed = hd.parse_hd_path(path)
    key, tweak = hd.child_key(account(curve, parsed.account_path), parsed)
    return str(parsed), key, tweak


def sign_data(chain: str, curve: str, data: Any) -> bytes:
    """The bytes to sign on ``chain``, refused (``InputInvalid``) unless bytes, and on a secp256k1
    chain a 32-byte digest (the chain's hash of the transaction); an ed25519 chain signs the message."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputInvalid(f"the data to sign on {chain} must be bytes, not {type(data).__name__}")
    signed = bytes(data)
    if curve == "secp256k1" and len(signed) != 32:
        raise InputInvalid(f"{chain} is a secp256k1 chain: it signs a 32-byte digest, not {len(signed)} bytes; "
                           "hash the transaction first (or let mpc.chains build and hash it)")
    return signed


def client_share_id(curve: str, share: Any) -> str:
    """The client's public share of a key pair, hex: Q1 = x1·G (secp256k1; both shares know it)
    or the client's FROST verifying share (ed25519). Public values: never a secret."""
    if curve == "secp256k1":
        return str(share.q1.to_bytes().hex())
    return str(share.verifying_shares[CLIENT_PARTY].to_bytes().hex())


SHARE_REFERENCE = "signing-share"  # the first part of a parked sign's share reference


def share_digest(data: bytes) -> str:
    """Which version of a client's custodian signing share a parked sign names (docs/operations.md,
    The parked row): BLAKE2b-128 of the share's stored bytes, hex. Every generate and recover
    makes a new share (new x2, new Paillier key): a digest of the old one never matches it."""
    return hashlib.blake2b(data, digest_size=16, person=b"portal-mpc-share").hexdigest()


def sign_child(curve: str, session_id: bytes, share: Any, party: int, data: bytes,
                precomputations: ecdsa2p.PrecomputationSource | None = None,
                decryption_guard: ecdsa2p.DecryptionGuard | None = None) -> Any:
    """The signing session of one party for one curve: two-party ECDSA (the custodian with its
    precomputation source, if any; the client with its decryption guard), or FROST in one round
    trip (the client initiates)."""
    try:
        if curve == "secp256k1":
            if party == CLIENT_PARTY:
                return ecdsa2p.SignP1(session_id, share, data, decryption_guard=decryption_guard)
            return ecdsa2p.SignP2(session_id, share, data, precomputations=precomputations)
        if party == CLIENT_PARTY:
            return frost.InitiatorSession(session_id, share, CUSTODIAN_PARTY, data)
        return frost.ResponderSession(session_id, share, CLIENT_PARTY, data)
    except KeyLocked:
        raise KeyLockedError() from None
    except UsageError as exc:
        raise from_protocol_error(exc) from None


def sign_result(chain: str, curve: str, public_key: bytes, signature: Any) -> SignResult:
    """The ``SignResult`` of a protocol signature (an ``ecdsa2p.Signature`` or 64 Ed25519 bytes)."""
    if curve == "secp256k1":
        return SignResult._of(chain, curve, public_key, signature.to_bytes(), signature.r, signature.s,
                              signature.recid, signature.to_der())
    return SignResult._of(chain, curve, public_key, bytes(signature))


DECRYPTION_MARKER_SECONDS = 60.0  # a decryption takes milliseconds: an older marker is a crash


def _decryption_marker(client: Device, session_id: bytes) -> str:
    return f"{client.client_id}.secp256k1.decrypting.{session_id.hex()}"


class _KeychainDecryptionGuard:
    """P1's decryption guard on the keychain: a marker entry (with the time) exists exactly while
    a c3 is being decrypted and its signature checked. A marker left by a crash is found by the
    next signing operation and locks the share (``lock_after_interrupted_decryptions``)."""

    def __init__(self, client: Device, session_id: bytes) -> None:
        self.client, self.name = client, _decryption_marker(client, session_id)

    def begin(self) -> None:
        self.client.keychain.put(self.name, struct.pack(">d", time.time()))

    def end(self) -> None:
        self.client.keychain.delete(self.name, missing_ok=True)


def lock_after_interrupted_decryptions(client: Device) -> None:
    """A decryption marker older than ``DECRYPTION_MARKER_SECONDS`` means the device stopped
    between decrypting a c3 and checking its signature: count it as a failed signature and
    lock the share (docs/threat-model.md; younger markers belong to sessions still running)."""
    prefix = _decryption_marker(client, b"")  # every marker of this client
    for name in [n for n in client.keychain.names() if n.startswith(prefix)]:
        try:
            (began,) = struct.unpack(">d", client.keychain.get(name))
        except (struct.error, MPCError):
            began = 0.0
        if time.time() - began < DECRYPTION_MARKER_SECONDS:
            continue
        if client._entry("secp256k1") in client.keychain:
            share = client.signing_share("secp256k1")
            share.lock()
            client.keychain.put(client._entry("secp256k1"), share.to_bytes())
        client.keychain.delete(name, missing_ok=True)


HELLO_FIELD = "hello"
HELLO_KEYS = ("client_id", "chain", "data_sha256", "client_share", "path", "child_key")  # in this order


def hello_text(hello: Mapping[str, Any]) -> str:
    """The hello as it travels (module docstring, "Framing"): its values, under the first four or
    all six of ``HELLO_KEYS`` in that order (as ``sign_hello`` makes it), joined by single spaces.
    Each value is non-empty text without a space (hex digits, a chain's name, a client id, a
    canonical HD path), so the text reads back as exactly these values (``parse_hello``);
    anything else is a ``UsageError``."""
    if tuple(hello) != HELLO_KEYS[:len(hello)]:
        raise UsageError("a sign's hello has the first fields of " + ", ".join(HELLO_KEYS) + ", in this order")
    return _joined_hello(list(hello.values()))


def sign_hello_text(client_id: str, chain: str, data: bytes, client_share: str,
                    child: tuple[str, bytes] | None = None) -> str:
    """``hello_text(sign_hello(...))`` of the same arguments, made without the dict (each side of a
    sign makes its own hello's text once: the client to send it, the custodian to compare): the
    same text, and the same ``UsageError`` for a value that would not read back."""
    values = [client_id, chain, hashlib.sha256(data).hexdigest(), client_share]
    if child is not None:
        values += (child[0], child[1].hex())
    return _joined_hello(values)


def _joined_hello(values: list[Any]) -> str:
    """The hello's values (``HELLO_KEYS``' first ones, in order) joined by single spaces, if each
    is non-empty text without a space (so that ``parse_hello`` reads them back), else ``UsageError``."""
    try:
        text = " ".join(values)
    except TypeError:
        raise UsageError("a sign's hello holds text values") from None
    if text.count(" ") != len(values) - 1 or "" in values:
        raise UsageError("a sign's hello holds non-empty values without spaces")
    return text


def parse_hello(text: str) -> dict[str, str]:
    """The hello's fields from its text (``hello_text``): one to six non-empty values, named by
    ``HELLO_KEYS`` in order, else ``InvalidMessage``. Which fields and values the custodian
    accepts, its hello check decides (exactly its own hello)."""
    values = text.split(" ")
    if len(values) > len(HELLO_KEYS) or "" in values:
        raise InvalidMessage("the client's hello is not a sign's hello")
    return dict(zip(HELLO_KEYS, values))


def first_payload(hello: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of the client's first message (module docstring, "Framing"): the fields of
    its child's first ``child`` payload (none of which may be named ``HELLO_FIELD``:
    ``UsageError``) and ``HELLO_FIELD``, the hello's text (``hello_text``)."""
    return _joined_first_payload(hello_text(hello), child)


def _joined_first_payload(text: str, child: Mapping[str, Any]) -> dict[str, Any]:
    """``first_payload`` of a hello already made into its text (``sign_hello_text``)."""
    if HELLO_FIELD in child:
        raise UsageError(f"a signing protocol's first payload has a field named {HELLO_FIELD!r}")
    payload = dict(child)
    payload[HELLO_FIELD] = text
    return payload


def split_first_payload(payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(hello text, child payload) of the client's first message, as ``first_payload`` joined them
    (the child's message freezes its part again, as every ``Message`` does). No hello, or a hello
    that is not text, is ``InvalidMessage``; what the text must say, the custodian's hello check
    decides (``CustodianSign._check_hello``)."""
    child = dict(payload)
    text = child.pop(HELLO_FIELD, None)
    if type(text) is not str:
        raise InvalidMessage("the client's first message carries its hello (text) beside its child's first message")
    return text, child


def sign_protocol(curve: str) -> str:
    """The protocol name of a sign's messages on ``curve``: its child's (``ecdsa2p/sign`` or
    ``frost/round-trip-sign``; module docstring, "Framing")."""
    return ecdsa2p.SignP2.protocol if curve == "secp256k1" else frost.ResponderSession.protocol


class _SignChannel(Composite):
    """The channel of both roles of ``sign`` (module docstring, "Framing"): the one child's own
    messages, the client's hello beside its child's first payload.

    The child runs under the operation's session id, so each message is checked by the child's
    own envelope check (``Session._check_envelope``: protocol, session id, the two parties, the
    round awaited, a duplicate, a finished run) before anything is decoded, as the protocol
    alone checks it; the recipient must be this party. The client's first message, whose child
    does not exist yet on the custodian's side, is checked here the same way (``_check_first``)
    before its hello; the child's part of it is made by the ``Message`` constructor's checks.
    A rejected message changes nothing: the custodian registers its child only once the first
    message, hello and child payload, was accepted, and a custodian made without a session id
    takes the id of the client's first message only if that message is accepted."""

    curve: str
    chain: str
    data: bytes
    _root: Any
    _hd_child: tuple[str, Point, int] | None

    def _hello_values(self) -> tuple[str, bytes, str, tuple[str, bytes] | None]:
        """``sign_hello``'s arguments after the client id: the chain, the data, the client's
        public share (``client_share_id`` of the root pair) and, with a path, the path and child key."""
        child = None if self._hd_child is None else (self._hd_child[0], self._hd_child[1].to_bytes())
        return self.chain, self.data, client_share_id(self.curve, self._root), child

    def start(self) -> list[Message]:
        """``Composite.start``; the operation then awaits what its child awaits (the client's), or
        the first message's round 1 (the custodian's, which has no child yet): a transport's resend
        and replay logic compares the messages' rounds with it (``mpc.remote``). (``Session.start``
        directly: ``Composite.start`` only sets the round, which is set here.)"""
        messages = Session.start(self)
        child = self._children.get(self.curve)
        self._round = self._next_from_peer if child is None else child._round  # ``child.awaiting_round``
        return messages

    def receive(self, msg: Message) -> list[Message]:
        """The peer's message, to the child (the first one through ``_receive_first``)."""
        if self._abort is not None:  # ``_raise_if_aborted``
            raise self._abort
        child = self._children.get(self.curve)
        if child is None:
            return self._receive_first(msg)
        if not isinstance(msg, Message) or msg.recipient != self.party_id:
            raise InvalidMessage("not a Message addressed to this party")
        return self._accept(child, self._guard(child.receive, msg, culprit=msg.sender))

    def _check_first(self, msg: Message) -> bytes:
        """The envelope of the client's first message (as the child will check the next ones);
        the session id it binds (the custodian's own, or the message's if it was made without one)."""
        if not isinstance(msg, Message):
            raise InvalidMessage("not a Message")
        if msg.protocol != sign_protocol(self.curve):
            raise InvalidMessage(f"message for protocol {msg.protocol!r}, expected {sign_protocol(self.curve)!r}")
        if not self._unbound and msg.session_id != self.session_id:
            raise InvalidMessage("message for another session")
        if msg.sender != self.peer or msg.recipient != self.party_id:
            raise InvalidMessage("message between the wrong parties")
        if self._done:
            raise InvalidMessage("session already finished")
        if not self._started or msg.round > 1:
            raise FutureMessage("waiting for the client's first message")
        if msg.round < 1:
            raise InvalidMessage(f"message of past round {msg.round}")
        return msg.session_id

    def _receive_first(self, msg: Message) -> list[Message]:
        """The client's first message (the custodian's side): the hello is checked, then a fresh
        child takes the child's first payload; both are kept only if both are accepted."""
        session_id = self._check_first(msg)
        asked, child_payload = split_first_payload(msg.payload)
        self._guard(self._check_hello, asked, msg.sender, culprit=msg.sender)
        child = self._first_child(session_id)
        if child.start():
            raise UsageError("the custodian's signing session must not speak first")
        # The first message's header (``_check_first``: round 1) and its payload's own frozen values
        # but the hello: frozen already (``Message._with_frozen_payload``).
        inner = msg._with_frozen_payload(frozen(child_payload))
        produced = self._guard(child.receive, inner, culprit=msg.sender)
        self.session_id, self._unbound = session_id, False
        self._children[self.curve] = child
        return self._accept(child, produced)

    def _check_hello(self, text: str, sender: int) -> None:
        """Accept the client's hello (its text) or refuse it; a sign takes no parameter from it
        (it must be exactly the custodian's own: ``CustodianSign._check_hello``)."""
        raise InvalidMessage("unexpected first message")

    def _first_child(self, session_id: bytes) -> Session:
        raise InvalidMessage("unexpected first message")

    def _accept(self, child: Session, produced: list[Message]) -> list[Message]:
        """The peer's message was accepted by ``child``: its replies go out as they are (once
        the child is done, with what ends the operation)."""
        self._next_from_peer += 1  # ``Composite._accepted``; the round is then what the child
        self._round = child._round  # awaits next (``start``; ``child.awaiting_round``, ``child.done``)
        if not child._done or self._children_done:
            return produced
        self._children_done = True  # the one child is done (``Composite._check_children_done``)
        return produced + self._guard(self._on_children_done)


class ClientSign(ClientOperation, _SignChannel):
    """The device's side of ``sign``: ECDSA P1 (with the decryption guard) or the FROST initiator.
    Not parkable: it holds the device's nonces (docs/threat-model.md, rollback)."""

    protocol = "wallet/sign"

    def __init__(self, client: Device, session_id: bytes, chain: str, data: bytes, *, path: str | None = None) -> None:
        super().__init__(client, session_id)
        self.chain = chain
        self.curve = curve_of_chain(chain)
        self.data = sign_data(chain, self.curve, data)
        self._hd_child = None if path is None else path_tweak(
            lambda curve, account: hd.client_account(client, curve, account), self.curve, path)
        if self.curve == "secp256k1":
            lock_after_interrupted_decryptions(client)
        self._root = client.signing_share(self.curve)
        # With a path, the tweaked copy signs (the custodian adds the same public tweak to x2 / s2);
        # the root share stays the one kept and locked (a lock set on the copy is carried back).
        self._share = self._root if self._hd_child is None else self._root.tweaked(self._hd_child[2])
        guard = _KeychainDecryptionGuard(client, session_id) if self.curve == "secp256k1" else None
        self._session = sign_child(self.curve, self.session_id, self._share, CLIENT_PARTY, self.data,
                                   decryption_guard=guard)

    def _hello(self) -> dict[str, Any]:
        return sign_hello(self.client.client_id, *self._hello_values())

    def _begin(self) -> list[Message]:
        """The hello beside the child's first message (module docstring, "Framing")."""
        first = self._session.start()
        if len(first) != 1 or first[0].round != 1:
            raise UsageError("a signing session's initiator sends one first message, of round 1")
        (child,) = first
        text = sign_hello_text(self.client.client_id, *self._hello_values())  # ``hello_text(self._hello())``
        # The child's header, its payload's frozen values and the hello's text (a str): frozen already.
        message = child._with_frozen_payload(frozen(_joined_first_payload(text, child.payload)))
        self._children[self.curve] = self._session  # only once the first message could be made
        return [message]

    def receive(self, msg: Message) -> list[Message]:
        if self.curve == "secp256k1":
            self._adopt_persisted_lock()
        try:
            return super().receive(msg)
        except KeyLocked:
            # The share object was locked by the signing session: persist it before anything else.
            self._root.lock()
            if self._persisted_share() is not None:
                self.client.keychain.put(self.client._entry(self.curve), self._root.to_bytes())
            self.client.keychain.delete(_decryption_marker(self.client, self.session_id), missing_ok=True)
            raise KeyLockedError() from None

    def _persisted_share(self) -> Any:
        """The keychain's copy of this operation's share, if the keychain still holds that share."""
        try:
            stored = self.client.signing_share(self.curve)
        except WalletNotFound:
            return None
        return stored if stored.q1 == self._share.q1 else None  # a recover may have replaced it

    def _adopt_persisted_lock(self) -> None:
        """A lock set by another session on another copy of the share (another operation, another
        process) stops this one too, before it can decrypt anything (CVE-2023-33242)."""
        stored = self._persisted_share()
        if stored is not None and stored.locked and not self._share.locked:
            self._share.lock()

    def _on_children_done(self) -> list[Message]:
        self._finish(sign_result(self.chain, self.curve, self._share.public_key, self._children[self.curve].result()))
        return []

    def result(self) -> SignResult:
        """The signature (the client has it first)."""
        result: SignResult = super().result()  # (a variable, not ``typing.cast``: no call)
        return result


class CustodianSign(CustodianOperation, _SignChannel):
    """The custodian's side of ``sign``: ECDSA P2 (with a precomputation from the pool, if any)
    or the FROST responder; parkable (its ECDSA state holds k2 once the client committed to R1;
    every step runs in ``CustodianOperation``'s derived randomness: docs/threat-model.md)."""

    protocol = "wallet/sign"
    exclusive = False
    # The client sends each message only once it has every message of the custodian before it
    # (the child's rounds alternate, one message each: module docstring, "Framing"): a client
    # that resumes lacks at most the last step's messages (``mpc.service.worker._outbox``).
    alternates = True

    def __init__(self, custodian: Service, client_id: str, session_id: bytes | None, chain: str, data: bytes, *,
                 path: str | None = None, share: Any, digest: str | None = None) -> None:
        self.chain = chain
        self.curve = curve_of_chain(chain)
        self.data = sign_data(chain, self.curve, data)
        self._hd_child = None if path is None else path_tweak(
            lambda curve, account: hd.custodian_account(custodian.store, client_id, curve, account), self.curve, path)
        super().__init__(custodian, client_id, session_id)
        self._root = share  # the root share the caller read already (``Custodian.sign``: with the client's row)
        self._share = self._root if self._hd_child is None else self._root.tweaked(self._hd_child[2])
        # ``share_digest`` of the root share as stored: the parked state names the share by it
        # instead of carrying it (``share_references``); None: the share is parked inside the state.
        self._root_digest = digest

    def share_references(self) -> list[tuple[Any, tuple[str, ...]]]:
        """The shares the parked state names instead of carrying them (``protocols.state``,
        References; docs/operations.md, The parked row): the root share as (``SHARE_REFERENCE``,
        client, curve, ``share_digest``), and with a path the tweaked copy as the same key plus
        the tweak (hex), which ``Custodian._decode`` derives again from the root share. None (the
        share parked inside the state) when the sign was made without the digest (or parked by a
        version before references)."""
        digest = getattr(self, "_root_digest", None)
        if digest is None:
            return []
        root = (SHARE_REFERENCE, self.client_id, self.curve, digest)
        if self._hd_child is None:
            return [(self._root, root)]
        return [(self._root, root), (self._share, root + (format(self._hd_child[2], "x"),))]

    def check_references(self, resolved: Mapping[tuple[str, ...], Any]) -> None:
        """The share references a decoded state resolved (key -> share) are exactly this sign's
        own, and its shares are those very objects: its client and curve, and with a path its
        tweak; else ``StateInvalid`` (a state naming another client's or curve's share never
        signs with it)."""
        digest, child = getattr(self, "_root_digest", None), self._hd_child
        if digest is not None and type(digest) is not str \
                or child is not None and not (type(child) is tuple and len(child) == 3 and type(child[2]) is int):
            raise StateInvalid("this parked sign names its share malformed")  # no sign parks such a field
        expected = {key: share for share, key in self.share_references()}
        if set(resolved) != set(expected) or any(resolved[key] is not share for key, share in expected.items()):
            raise StateInvalid("this parked sign names a share that is not its own")

    def _hello(self) -> dict[str, Any]:
        return sign_hello(self.client_id, *self._hello_values())

    def _expected_hello(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """This session's hello; a device that asks for this very signature with another public
        share than the custodian's pair gets ``SHARE_REPLACED`` (before the hello is compared)."""
        expected = self._hello()
        same_request = data.get("client_id") == expected["client_id"] and data.get("chain") == expected["chain"]
        if same_request and data.get("client_share") != expected["client_share"]:
            get_point(data, "client_share", group_by_name(self.curve))  # malformed: MESSAGE_INVALID
            # The device signs with shares the custodian no longer holds: a recover replaced them.
            raise ShareReplaced(f"this device's {self.curve} signing share is not the client's current "
                                "one (a recover replaced it): wipe this device and recover onto it, "
                                "or sign with the device that recovered")
        return expected

    def _check_hello(self, text: str, sender: int) -> None:
        """The client's hello (its text, ``hello_text``), accepted if it is exactly this session's;
        otherwise read (``parse_hello``) and refused by the operations' hello check, which names
        what differs (``CustodianOperation._decode_step``; ``SHARE_REPLACED``: ``_expected_hello``).
        A sign takes nothing from an accepted hello (no ``_on_hello``: ``CustodianOperation``'s
        does nothing for it)."""
        if text == sign_hello_text(self.client_id, *self._hello_values()):  # ``hello_text(self._hello())``
            return
        self._decode_pure("hello", parse_hello(text), sender)  # its own hello reads back as itself: this raises
        raise InvalidMessage("the client's hello is not this sign's")  # (never reached: a differing text differs)

    def _first_child(self, session_id: bytes) -> Session:
        """The signing session that takes the client's first message (made once its hello held),
        under the operation's ``session_id`` (module docstring, "Framing")."""
        child: Session = sign_child(self.curve, session_id, self._share, CUSTODIAN_PARTY, self.data,
                                    self._pool_source())
        return child

    def _pool_source(self) -> ecdsa2p.PrecomputationSource | None:
        """Where ECDSA P2 takes a precomputation in its round 3: this process's pool."""
        if self.curve != "secp256k1":
            return None
        return self.custodian.precomputations.source(self.client_id, self._share)

    def _resume(self, context: Mapping[str, Any]) -> None:
        super()._resume(context)
        child = self._children.get(self.curve)
        if isinstance(child, ecdsa2p.SignP2):  # the source is never parked: attach this process's pool
            child.precomputations = self._pool_source()

    def _on_children_done(self) -> list[Message]:
        self._complete(sign_result(self.chain, self.curve, self._share.public_key, self._children[self.curve].result()))
        return []

    def result(self) -> SignResult:
        """The same signature as the client's."""
        result: SignResult = super().result()  # (a variable, not ``typing.cast``: no call)
        return result


# Parkable state (``protocols.state``): the custodian's side only.
register_attrs(CustodianSign)
