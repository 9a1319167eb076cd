"""A malicious-party harness for every protocol of the engine (issue 10).

Pieces:

- ``Malicious(inner, rewrite=...)`` stands in for one party of *any* session (two-party ECDSA,
  FROST, a wallet composite): it runs the honest ``inner`` session and passes each outgoing
  message through ``rewrite(msg) -> Message | list[Message] | None`` (alter, multiply or drop it).
  ``Scripted(party, protocol, session_id, script)`` replays fixed messages instead (replays from
  another run, hand-made payloads): script[0] at start, script[i] after the i-th message received.
- ``drive(sessions)`` moves messages through their wire encoding until nobody can go on and
  returns an ``Outcome``: the results of the parties that finished and the first error an honest
  (not malicious) party raised, with that party. Errors of the malicious party are recorded and
  otherwise ignored: it may stop talking whenever it likes.
- ``Scenario``: how to build fresh honest sessions of one protocol and how to check the outputs
  of honest parties (a share that works, a signature that verifies). ``SCENARIOS`` lists one per
  protocol: ecdsa2p keygen / sign / refresh / backup reshare, FROST DKG / sign / refresh /
  reshare, and the wallet operations generate / backup / recover / sign (both curves) / eject.
- ``record(scenario)`` runs one honest transcript and keeps, before each delivery, a snapshot of
  every session together with the message about to be delivered (``Checkpoint``);
  ``Checkpoint.fresh()`` gives an independent copy of the sessions at that point (deep copy; the
  wallet's custodian, store, client, keychain and cloud are shared, not copied), so a fuzzer can
  deliver one mutated message to a fresh receiver without re-running the protocol.
- ``WALLET_ERRORS``: an engine error is an acceptable refusal at the wallet level unless it is
  the bare ``EngineError`` (an internal failure).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import secrets
import signal
from types import MappingProxyType
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ecdsa
from ecdsa.util import sigdecode_string
from nacl.signing import VerifyKey

import mpc
from curves import Group, Point, SecretScalar, secp256k1
from mpc.backup.methods import MemoryCloudStorage
from mpc.backup.versions import BackupVersions
from mpc.errors import EngineError
from protocols import ecdsa2p, frost
from protocols.ecdsa2p import CLIENT, CUSTODIAN, P1KeyShare, P2KeyShare, Signature, SignP1
from protocols.errors import FutureMessage, InvalidMessage, KeyLocked, MPCError, ProtocolAbort
from protocols.frost.round1 import SigningNonces
from protocols.frost.round_trip import InitiatorSession
from protocols.rounds import Message, Session

__all__ = [
    "Malicious",
    "Scripted",
    "Outcome",
    "drive",
    "Scenario",
    "SCENARIOS",
    "Checkpoint",
    "record",
    "new_sid",
    "wire",
    "acceptable_refusal",
    "time_limit",
]

DIGEST = hashlib.sha256(b"adversarial").digest()
MESSAGE = b"adversarial ed25519 message"


def new_sid() -> bytes:
    return secrets.token_bytes(32)


def wire(msg: Message) -> Message:
    return Message.from_bytes(msg.to_bytes())


# --- malicious parties ------------------------------------------------------------------------------
Rewrite = Callable[[Message], "Message | list[Message] | None"]


class Malicious(Session):
    """Plays ``inner``'s party honestly but rewrites every message it sends with ``rewrite``."""

    def __init__(self, inner: Session, rewrite: Rewrite | None = None) -> None:
        super().__init__(inner.session_id, inner.party_id, inner.parties)
        self.protocol = inner.protocol  # type: ignore[misc]
        self.inner = inner
        self.rewrite = rewrite or (lambda msg: msg)
        self.sent: list[Message] = []
        self.errors: list[MPCError] = []

    def _out(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        for msg in messages:
            new = self.rewrite(msg)
            out += [] if new is None else new if isinstance(new, list) else [new]
        self.sent += out
        return out

    def start(self) -> list[Message]:
        return self._out(self.inner.start())

    def receive(self, msg: Message) -> list[Message]:
        try:
            return self._out(self.inner.receive(msg))
        except FutureMessage:
            raise
        except MPCError as exc:  # the attacker's own verdict does not matter
            self.errors.append(exc)
            return []

    @property
    def done(self) -> bool:
        return self.inner.done

    def result(self) -> Any:
        return self.inner.result()


class Scripted(Session):
    """A party that sends fixed messages: ``script[0]`` at start, ``script[i]`` after message i."""

    def __init__(self, party_id: int, parties: Sequence[int], session_id: bytes,
                 script: Sequence[Sequence[Message]]) -> None:
        super().__init__(session_id, party_id, parties)
        self.script = [list(step) for step in script]
        self.received: list[Message] = []

    def start(self) -> list[Message]:
        return self.script[0] if self.script else []

    def receive(self, msg: Message) -> list[Message]:
        self.received.append(msg)
        i = len(self.received)
        return self.script[i] if i < len(self.script) else []

    @property
    def done(self) -> bool:
        return False


# --- the driver ---------------------------------------------------------------------------------------
@dataclass
class Outcome:
    results: dict[int, Any]
    error: MPCError | None = None
    party: int | None = None
    stalled: bool = False

    def honest_error(self, kind: type[BaseException] | tuple[type[BaseException], ...]) -> MPCError:
        assert isinstance(self.error, kind), f"expected {kind}, got {self.error!r}"
        return self.error


def drive(sessions: Sequence[Session], *, started: bool = False,
          pending: Sequence[Message] = ()) -> Outcome:
    """Deliver messages (through their wire encoding) until no session can go on.

    The first error of a party that is not ``Malicious``/``Scripted`` stops the run and is
    returned; anything that is not an ``MPCError`` propagates (a test failure).
    """
    by_party = {s.party_id: s for s in sessions}
    queue: deque[tuple[int, Message]] = deque()

    def post(messages: list[Message]) -> None:
        for msg in messages:
            delivered = wire(msg)
            targets = [p for p in by_party if p != msg.sender] if msg.recipient is None else [msg.recipient]
            queue.extend((p, delivered) for p in targets if p in by_party)

    if not started:
        for session in sessions:
            try:
                post(session.start())
            except MPCError as exc:
                return Outcome(_results(sessions), exc, session.party_id)
    post(list(pending))
    deferred = 0
    while queue:
        party, msg = queue.popleft()
        try:
            post(by_party[party].receive(msg))
            deferred = 0
        except FutureMessage:
            queue.append((party, msg))
            deferred += 1
            if deferred > len(queue):
                return Outcome(_results(sessions), stalled=True)
        except MPCError as exc:
            if isinstance(by_party[party], (Malicious, Scripted)):
                continue
            return Outcome(_results(sessions), exc, party)
    stalled = not all(s.done for s in sessions if not isinstance(s, Scripted))
    return Outcome(_results(sessions), stalled=stalled)


def _results(sessions: Sequence[Session]) -> dict[int, Any]:
    return {s.party_id: s.result() for s in sessions if not isinstance(s, Scripted) and s.done
            and not isinstance(s, Malicious)}


def acceptable_refusal(exc: BaseException, receiver: int, sender: int, *, locks: bool = False,
                       attributable: bool = True) -> bool:
    """Whether ``exc`` is an allowed way for the honest ``receiver`` to refuse ``sender``'s message."""
    if isinstance(exc, ProtocolAbort):
        return exc.culprit == sender or (exc.culprit is None and not attributable)
    if isinstance(exc, KeyLocked):
        return locks
    if isinstance(exc, EngineError):
        culprit = getattr(exc, "culprit", sender)
        return type(exc) is not EngineError and culprit in (sender, None)
    return isinstance(exc, InvalidMessage)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging: a hostile message must never stall a party."""

    def fire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- scenarios ----------------------------------------------------------------------------------------
@dataclass
class Scenario:
    """``make()`` gives fresh honest sessions; ``check(results)`` validates honest outputs.

    ``locks``: the client may answer a crafted message with ``KeyLocked`` (ECDSA signing);
    ``attributable``: every abort must name the sender (two parties); ``shared``: objects that
    snapshots share instead of copying (the wallet's custodian and client).
    """

    name: str
    make: Callable[[], list[Session]]
    check: Callable[[dict[int, Any]], None]
    locks: bool = False
    attributable: bool = True
    shared: Callable[[], list[Any]] = lambda: []
    heavy: bool = False


def check_ecdsa(public_key: bytes, digest: bytes, sig: Signature) -> None:
    vk = ecdsa.VerifyingKey.from_string(public_key, curve=ecdsa.SECP256k1)
    assert vk.verify_digest(sig.to_bytes(), digest, sigdecode=sigdecode_string)
    assert sig.s <= secp256k1.order // 2


def _check_pair(results: dict[int, Any]) -> None:
    p1, p2 = results.get(CLIENT), results.get(CUSTODIAN)
    if p1 is not None:
        assert p1.x1.public_point() + p1.q2 == p1.public_point
    if p2 is not None:
        assert p2.x2.public_point() + p2.q1 == p2.public_point
    if p1 is not None and p2 is not None:
        assert p1.public_key == p2.public_key and p1.q2 == p2.x2.public_point() and p1.q1 == p2.q1
        if p1.can_sign and p2.can_sign:
            check_ecdsa(p1.public_key, DIGEST, ecdsa2p.sign(copy_p1(p1), p2, DIGEST))


def copy_p1(share: P1KeyShare) -> P1KeyShare:
    return share.copy()


def _check_frost_shares(results: dict[int, Any]) -> None:
    shares = [r for r in results.values() if r is not None]
    for share in shares:
        share.validate()
    assert len({s.public_key for s in shares}) <= 1
    if shares and len(shares) >= shares[0].threshold:
        VerifyKey(shares[0].public_key).verify(MESSAGE, frost.sign(shares[: shares[0].threshold], MESSAGE))


def _check_frost_signature(public_key: bytes) -> Callable[[dict[int, Any]], None]:
    def check(results: dict[int, Any]) -> None:
        for signature in results.values():
            VerifyKey(public_key).verify(MESSAGE, signature)

    return check


_pair_cache: dict[str, tuple[P1KeyShare, P2KeyShare]] = {}


def ecdsa_pair() -> tuple[P1KeyShare, P2KeyShare]:
    if "pair" not in _pair_cache:
        _pair_cache["pair"] = ecdsa2p.keygen()
    return _pair_cache["pair"]


def _ecdsa_scenarios() -> list[Scenario]:
    def keygen() -> list[Session]:
        sid = new_sid()
        # known=[]: the setups travel whole, so every field of Π_prm and Π_mod is fuzzed too
        return [ecdsa2p.KeygenP1(sid, known=[]), ecdsa2p.KeygenP2(sid, ecdsa2p.default_setup(), known=[])]

    def sign() -> list[Session]:
        p1, p2 = ecdsa_pair()
        sid = new_sid()
        return [ecdsa2p.SignP1(sid, copy_p1(p1), DIGEST), ecdsa2p.SignP2(sid, p2, DIGEST)]

    def reshare(for_signing: bool) -> Callable[[], list[Session]]:
        def make() -> list[Session]:
            p1, p2 = ecdsa_pair()
            sid = new_sid()
            return [ecdsa2p.ReshareP1(sid, p1, for_signing=for_signing, known=[]),
                    ecdsa2p.ReshareP2(sid, p2, for_signing=for_signing, setup=ecdsa2p.default_setup(), known=[])]

        return make

    def check_sign(results: dict[int, Any]) -> None:
        for sig in results.values():
            check_ecdsa(ecdsa_pair()[0].public_key, DIGEST, sig)

    return [
        Scenario("ecdsa2p/keygen", keygen, _check_pair, heavy=True),
        Scenario("ecdsa2p/sign", sign, check_sign, locks=True),
        Scenario("ecdsa2p/refresh", reshare(True), _check_pair, heavy=True),
        Scenario("ecdsa2p/reshare-backup", reshare(False), _check_pair),
    ]


_frost_cache: dict[str, list[frost.KeyShare]] = {}


def frost_shares(t: int, n: int) -> list[frost.KeyShare]:
    key = f"{t}-{n}"
    if key not in _frost_cache:
        _frost_cache[key] = frost.trusted_dealer_keygen(t, n)
    return _frost_cache[key]


def _frost_scenarios() -> list[Scenario]:
    def dkg() -> list[Session]:
        sid = new_sid()
        return [frost.DKGSession(sid, i, (1, 2, 3), 2) for i in (1, 2, 3)]

    def sign() -> list[Session]:
        shares = frost_shares(2, 3)
        sid = new_sid()
        return [frost.SignSession(sid, s, (1, 3), MESSAGE) for s in (shares[0], shares[2])]

    def refresh() -> list[Session]:
        shares = frost_shares(2, 3)
        sid = new_sid()
        return [frost.RefreshSession(sid, s, (1, 2, 3)) for s in shares]

    def reshare() -> list[Session]:
        shares = frost_shares(2, 2)
        sid = new_sid()
        first = shares[0]
        return [
            frost.ReshareSession(sid, p, dealers=(1, 2), receivers=(1, 3, 4), new_threshold=2,
                                 key_share=shares[p - 1] if p <= 2 else None,
                                 group_public_key=first.group_public_key,
                                 old_verifying_shares=first.verifying_shares)
            for p in (1, 2, 3, 4)
        ]

    sign_check = _check_frost_signature(frost_shares(2, 3)[0].public_key)
    return [
        Scenario("frost/dkg", dkg, _check_frost_shares, attributable=False),
        Scenario("frost/sign", sign, sign_check),
        Scenario("frost/refresh", refresh, _check_frost_shares, attributable=False),
        Scenario("frost/reshare", reshare, _check_frost_shares, attributable=False),
    ]


# --- wallet scenarios -----------------------------------------------------------------------------------
@dataclass
class WalletFixture:
    custodian: mpc.Custodian
    client_id: str
    client: mpc.Client
    cloud: MemoryCloudStorage = field(repr=False)

    def device(self) -> mpc.Client:
        return mpc.Client(self.client_id, mpc.MemoryKeychain(), cloud=self.cloud)

    def shared(self) -> list[Any]:
        objects = [self.custodian, self.custodian.store, self.client, self.client.keychain, self.cloud]
        return objects + [self.custodian.setup]


def new_wallet(generate: bool = True, backup: bool = False) -> WalletFixture:
    custodian = mpc.Custodian()
    client_id = custodian.create_client()
    cloud = MemoryCloudStorage()
    wallet = WalletFixture(custodian, client_id, mpc.Client(client_id, mpc.MemoryKeychain(), cloud=cloud), cloud)
    if generate:
        mpc.run_local(wallet.client.generate(), custodian.generate(client_id))
    if backup:
        mpc.run_local(wallet.client.backup(), custodian.backup(client_id))
    return wallet


def _check_addresses(wallet: WalletFixture) -> Callable[[dict[int, Any]], None]:
    def check(results: dict[int, Any]) -> None:
        client_view = results.get(CLIENT)
        custodian_view = results.get(CUSTODIAN)
        if client_view is not None and custodian_view is not None:
            assert client_view == custodian_view["addresses"]

    return check


def _wallet_scenarios() -> list[Scenario]:
    generate_wallet: list[WalletFixture] = []

    def generate() -> list[Session]:
        wallet = new_wallet(generate=False)
        generate_wallet[:] = [wallet]
        return [wallet.client.generate(), wallet.custodian.generate(wallet.client_id)]

    def check_generate(results: dict[int, Any]) -> None:
        _check_addresses(generate_wallet[0])(results)

    backup_wallet = _Lazy(lambda: new_wallet())
    recover_wallet = _Lazy(lambda: new_wallet(backup=True))
    sign_wallet = _Lazy(lambda: new_wallet())
    eject_wallet = _Lazy(lambda: new_wallet(backup=True))

    def backup() -> list[Session]:
        w = backup_wallet.get()
        return [w.client.backup(), w.custodian.backup(w.client_id)]

    def recover() -> list[Session]:
        w = recover_wallet.get()
        w.client = w.device()
        return [w.client.recover(), w.custodian.recover(w.client_id)]

    def sign(chain: str, data: bytes) -> Callable[[], list[Session]]:
        def make() -> list[Session]:
            w = sign_wallet.get()
            return [w.client.sign(chain, data), w.custodian.sign(w.client_id, chain, data)]

        return make

    def check_sign(data: bytes) -> Callable[[dict[int, Any]], None]:
        def check(results: dict[int, Any]) -> None:
            for result in results.values():
                if result.curve == "secp256k1":
                    check_ecdsa(result.public_key, data, Signature(result.r, result.s, result.recid))
                else:
                    VerifyKey(result.public_key).verify(data, result.signature)

        return check

    def eject() -> list[Session]:
        w = eject_wallet.get()
        return [w.client.eject(), w.custodian.eject(w.client_id)]

    def check_eject(results: dict[int, Any]) -> None:
        keys = results.get(CLIENT)
        if keys is not None:
            assert secp256k1.base_mul(int.from_bytes(keys.secp256k1_private_key, "big")).to_bytes() == \
                keys.secp256k1_public_key

    return [
        Scenario("wallet/generate", generate, check_generate, shared=lambda: generate_wallet[0].shared(),
                 heavy=True),
        Scenario("wallet/backup", backup, lambda r: None, shared=lambda: backup_wallet.get().shared()),
        Scenario("wallet/recover", recover, lambda r: None, shared=lambda: recover_wallet.get().shared(),
                 heavy=True),
        Scenario("wallet/sign-ethereum", sign("ethereum", DIGEST), check_sign(DIGEST), locks=True,
                 shared=lambda: sign_wallet.get().shared()),
        Scenario("wallet/sign-solana", sign("solana", MESSAGE), check_sign(MESSAGE),
                 shared=lambda: sign_wallet.get().shared()),
        Scenario("wallet/eject", eject, check_eject, shared=lambda: eject_wallet.get().shared()),
    ]


class _Lazy:
    def __init__(self, build: Callable[[], WalletFixture]) -> None:
        self.build = build
        self.value: WalletFixture | None = None

    def get(self) -> WalletFixture:
        if self.value is None:
            self.value = self.build()
        return self.value


SCENARIOS: dict[str, Scenario] = {s.name: s for s in _ecdsa_scenarios() + _frost_scenarios() + _wallet_scenarios()}


# --- snapshots of an honest run -------------------------------------------------------------------------
@contextlib.contextmanager
def copyable_secrets() -> Iterator[None]:
    """Let ``copy.deepcopy`` copy sessions: immutable secrets are shared, nonces duplicated.

    Test-only: the library refuses to pickle secrets on purpose; a snapshot must duplicate the
    state of a run, including its unused signing nonces, to deliver different messages to copies.
    """

    def copy_nonces(self: SigningNonces, memo: dict[int, Any]) -> SigningNonces:
        clone = object.__new__(SigningNonces)
        clone._nonces = self._nonces
        clone.commitments = self.commitments
        return clone

    def copy_session(self: Session, memo: dict[int, Any]) -> Session:
        clone = object.__new__(type(self))
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone

    atoms = (SecretScalar, Point, Group)  # immutable (a point's encoding cache is idempotent)
    unpicklable = (SignP1, InitiatorSession, frost.SignSession)  # sessions holding nonces refuse serialisation
    saved = {cls: cls.__dict__.get("__deepcopy__") for cls in (*atoms, SigningNonces, *unpicklable)}
    for cls in atoms:
        cls.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]
    SigningNonces.__deepcopy__ = copy_nonces  # type: ignore[attr-defined]
    for cls in unpicklable:
        cls.__deepcopy__ = copy_session  # type: ignore[attr-defined]
    copy._deepcopy_dispatch[MappingProxyType] = copy._deepcopy_atomic  # type: ignore[attr-defined]
    try:
        yield
    finally:
        copy._deepcopy_dispatch.pop(MappingProxyType, None)  # type: ignore[attr-defined]
        for cls, value in saved.items():
            if value is None:
                delattr(cls, "__deepcopy__")
            else:
                setattr(cls, "__deepcopy__", value)


def snapshot(sessions: Sequence[Session], shared: Sequence[Any]) -> list[Session]:
    memo = {id(obj): obj for obj in shared}
    with copyable_secrets():
        return copy.deepcopy(list(sessions), memo)


@dataclass
class Checkpoint:
    """The sessions just before ``message`` is delivered to ``message``'s recipient."""

    scenario: Scenario
    index: int
    message: Message
    receiver: int
    sessions: list[Session]
    queue: list[tuple[int, Message]]

    keychains: dict[int, dict[str, bytes]] = field(default_factory=dict)
    backup_rows: dict[int, dict[str, list[tuple[Any, ...]]]] = field(default_factory=dict)

    def fresh(self) -> tuple[dict[int, Session], list[tuple[int, Message]]]:
        shared = self.scenario.shared()
        # Keychains are shared, not copied: put back what they held at this point, so a lock that
        # an earlier mutated delivery persisted does not leak into this copy.
        for keychain in _keychains(shared):
            for name in keychain.names():
                keychain.delete(name)
            for name, data in self.keychains.get(id(keychain), {}).items():
                keychain.put(name, data)
        # The same for the custodian's backup versions: a copy of a backup session promotes only
        # the version it made, which a later run of an earlier checkpoint would have replaced.
        for store in _stores(shared):
            _restore_backup_rows(store, self.backup_rows.get(id(store), {}))
        copies = snapshot(self.sessions, shared)
        return {s.party_id: s for s in copies}, list(self.queue)

    @property
    def label(self) -> str:
        m = self.message
        return f"{self.scenario.name}#{self.index} r{m.round} {m.sender}->{self.receiver}"


def _keychains(shared: Sequence[Any]) -> list[mpc.MemoryKeychain]:
    return [obj for obj in shared if isinstance(obj, mpc.MemoryKeychain)]


def _stores(shared: Sequence[Any]) -> list[Any]:
    return [obj for obj in shared if isinstance(obj, mpc.storage.store.SQLiteStore)]


# The rows a backup writes (``mpc.backup.versions``): table -> the rows of it that belong to backups.
_BACKUP_ROWS = {"backup_versions": "", "backups": "", "client_backups": "", "shares": " WHERE kind = 'backup'"}


def _backup_rows(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    BackupVersions(store)  # the versions table exists from the start
    return {table: [tuple(row) for row in store._execute(f"SELECT * FROM {table}{where}").fetchall()]
            for table, where in _BACKUP_ROWS.items()}


def _restore_backup_rows(store: Any, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    with store.transaction():
        for table, where in _BACKUP_ROWS.items():
            store._execute(f"DELETE FROM {table}{where}")
            for row in rows.get(table, []):
                store._execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)


def record(scenario: Scenario) -> list[Checkpoint]:
    """One honest run of ``scenario`` with a snapshot before each delivery."""
    sessions = scenario.make()
    by_party = {s.party_id: s for s in sessions}
    queue: deque[tuple[int, Message]] = deque()

    def post(messages: list[Message]) -> None:
        for msg in messages:
            delivered = wire(msg)
            targets = [p for p in by_party if p != msg.sender] if msg.recipient is None else [msg.recipient]
            queue.extend((p, delivered) for p in targets)

    for session in sessions:
        post(session.start())
    checkpoints: list[Checkpoint] = []
    while queue:
        party, msg = queue.popleft()
        keychains = {id(k): {n: k.get(n) for n in k.names()} for k in _keychains(scenario.shared())}
        rows = {id(store): _backup_rows(store) for store in _stores(scenario.shared())}
        checkpoints.append(Checkpoint(scenario, len(checkpoints), msg, party,
                                      snapshot(sessions, scenario.shared()), list(queue), keychains, rows))
        try:
            post(by_party[party].receive(msg))
        except FutureMessage:
            checkpoints.pop()
            queue.append((party, msg))
    assert all(s.done for s in sessions), scenario.name
    scenario.check({s.party_id: s.result() for s in sessions})
    return checkpoints


def finish(sessions: Mapping[int, Session], queue: Sequence[tuple[int, Message]],
           extra: Sequence[tuple[int, Message]] = ()) -> Outcome:
    """Deliver ``extra`` then ``queue`` (already addressed) and run the sessions to the end."""
    ordered = list(sessions.values())
    by_party = dict(sessions)
    pending: deque[tuple[int, Message]] = deque(list(extra) + list(queue))
    deferred = 0
    while pending:
        party, msg = pending.popleft()
        try:
            replies = by_party[party].receive(msg)
            deferred = 0
        except FutureMessage:
            pending.append((party, msg))
            deferred += 1
            if deferred > len(pending):
                return Outcome(_results(ordered), stalled=True)
            continue
        except MPCError as exc:
            return Outcome(_results(ordered), exc, party)
        for reply in replies:
            delivered = wire(reply)
            targets = [p for p in by_party if p != reply.sender] if reply.recipient is None else [reply.recipient]
            pending.extend((p, delivered) for p in targets)
    return Outcome(_results(ordered), stalled=not all(s.done for s in ordered))
