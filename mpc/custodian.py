"""The custodian role (the service backend): ``mpc.Custodian(store)``.

Each operation returns a session (``protocols.rounds.Session``-compatible) that any transport can
drive against the client's session for the same operation; ``mpc.run_local`` drives both in
memory. The custodian stores its shares and the statuses in its store, each change in one
transaction. One state-changing operation (generate, backup, recover) runs per client at a time.

Operation flows (custodian side; child protocols run side by side through ``Composite``):
  generate  ecdsa2p keygen (P2) + FROST DKG 2-of-2 → store shares, STORED_DATABASE;
            client's "stored" step → STORED_CLIENT (the wallet exists from then on)
  backup    ecdsa2p reshare for backup + FROST refresh → custodian backup shares stored,
            STORED_CUSTODIAN_BACKUP_SHARE; then the client's encrypted backup share
            (default) → STORED_CLIENT_BACKUP_SHARE
  recover   sends the stored encrypted client backup share; ecdsa2p reshare for signing + FROST
            refresh from the backup shares → new signing shares replace the old ones,
            STORED_DATABASE; client's "stored" step → STORED_CLIENT
  sign      ecdsa2p sign (P2) or FROST sign; refused unless signing shares are STORED_CLIENT
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from typing import Any

from mpc.addresses import addresses
from mpc.errors import (
    BackupNotFound,
    InputInvalid,
    WebhookFailed,
    KeyLockedError,
    OperationInProgress,
    StateInvalid,
    WalletAlreadyExists,
    WalletNotFound,
    from_protocol_error,
)
from mpc.status import BackupShareStatus, SigningShareStatus
from mpc.store import ClientRecord, SQLiteStore
from mpc.webhook import BackupWebhook
from mpc.wallet import BACKUP_METHODS, CLIENT_PARTY, CURVES, CUSTODIAN_PARTY, DEFAULT_METHOD, PARTIES, SignResult, curve_of_chain, decode_share, default_home
from protocols import ecdsa2p, frost
from protocols.compose import Composite, child_session_id
from protocols.ecdsa2p import CustodianSetup
from protocols.encoding import get_bytes, require_keys
from protocols.errors import InvalidMessage, KeyLocked, MPCError, ProtocolAbort, UsageError
from protocols.rounds import Message, Session

__all__ = ["Custodian", "OPERATION_TIMEOUT_SECONDS"]

OPERATION_TIMEOUT_SECONDS = 600.0


class Custodian:
    """The service backend: holds custodian shares, statuses and (by default) encrypted client backups."""

    def __init__(
        self,
        store: SQLiteStore | None = None,
        *,
        setup: CustodianSetup | None = None,
        webhook: BackupWebhook | None = None,
    ) -> None:
        self.store = store if store is not None else _default_store()
        self._setup = setup
        self.webhook = webhook

    # --- setup --------------------------------------------------------------------------------
    @property
    def setup(self) -> CustodianSetup:
        """The long-lived ring-Pedersen setup: loaded from the store, else created once and stored."""
        if self._setup is None:
            data = self.store.load_setup()
            if data is not None:
                self._setup = CustodianSetup.from_bytes(data)
            else:
                self._setup = ecdsa2p.default_setup()
                self.store.save_setup(self._setup.to_bytes())
        return self._setup

    # --- clients ------------------------------------------------------------------------------
    def create_client(self) -> str:
        """A new client id with no wallet yet."""
        client_id = secrets.token_hex(16)
        self.store.create_client(client_id, SigningShareStatus.NOT_CREATED.value)
        return client_id

    def get_client(self, client_id: str) -> dict[str, Any]:
        """The custodian's view of a client: statuses, public keys and addresses."""
        record = self.store.client(client_id)
        backups = self.store.backups(client_id)
        view: dict[str, Any] = {
            "client_id": record.client_id,
            "signing_share_status": record.signing_share_status,
            "backup_share_status": _overall_backup_status([status for status, _ in backups.values()]),
            "backups": {method: {"status": status, "self_managed": managed} for method, (status, managed) in backups.items()},
            "backup_methods": list(backups),
            "ejected": record.ejected,
            "public_keys": {},
            "addresses": {},
        }
        if record.secp256k1_public and record.ed25519_public:
            view["public_keys"] = {"secp256k1": record.secp256k1_public.hex(), "ed25519": record.ed25519_public.hex()}
            view["addresses"] = addresses(record.secp256k1_public, record.ed25519_public)
        return view

    def stored_client_backup_share(self, client_id: str, method: str = DEFAULT_METHOD) -> None:
        """The customer confirms it stored the client's encrypted backup share itself."""
        method = _method_name(method)
        backups = self.store.backups(client_id)
        if method not in backups:
            raise StateInvalid("no custodian backup share for this method yet")
        self.store.set_backup(client_id, method, BackupShareStatus.STORED_CLIENT_BACKUP_SHARE.value, backups[method][1])

    def _require_backup(self, client_id: str, method: str) -> None:
        """Recover and eject need a complete backup of that method."""
        record = self.store.client(client_id)
        backups = self.store.backups(client_id)
        if not record.has_wallet or method not in backups:
            raise BackupNotFound("no backup for this client and method")
        if backups[method][0] != BackupShareStatus.STORED_CLIENT_BACKUP_SHARE.value:
            raise StateInvalid("this needs a backup whose client share is stored (STORED_CLIENT_BACKUP_SHARE)")

    # --- operations ---------------------------------------------------------------------------
    def generate(self, client_id: str, session_id: bytes | None = None) -> CustodianGenerate:
        record = self.store.client(client_id)
        if record.has_wallet:
            raise WalletAlreadyExists("this client already has a wallet")
        return CustodianGenerate(self, client_id, session_id)

    def backup(self, client_id: str, method: str = DEFAULT_METHOD, session_id: bytes | None = None, *,
               client_stores_backup: bool = False) -> CustodianBackup:
        self._require_signing(self.store.client(client_id))
        return CustodianBackup(self, client_id, session_id, method, client_stores_backup)

    def recover(self, client_id: str, method: str = DEFAULT_METHOD, session_id: bytes | None = None) -> CustodianRecover:
        self._require_backup(client_id, _method_name(method))
        return CustodianRecover(self, client_id, session_id, method)

    def eject(self, client_id: str, method: str = DEFAULT_METHOD, session_id: bytes | None = None) -> CustodianEject:
        """Hand the custodian backup shares to the client, which rebuilds each private key."""
        self._require_backup(client_id, _method_name(method))
        return CustodianEject(self, client_id, session_id, method)

    def sign(self, client_id: str, chain: str, data: bytes, session_id: bytes | None = None) -> CustodianSign:
        self._require_signing(self.store.client(client_id))
        return CustodianSign(self, client_id, session_id, chain, data)

    # Precomputation (``mpc.presign``): single-use Paillier nonces for ECDSA, in the store only.
    def presign(self, client_id: str, count: int, session_id: bytes | None = None) -> Session:
        """Make ``count`` ECDSA precomputations for the client (its side: ``client.presign``)."""
        from mpc.presign import CustodianPresign

        self._require_signing(self.store.client(client_id))
        return CustodianPresign(self, client_id, session_id, count)

    def sign_presigned(self, client_id: str, chain: str, data: bytes, session_id: bytes | None = None) -> CustodianSign:
        """The same as :meth:`sign` (which uses the precomputed pool by itself); kept as a name."""
        return self.sign(client_id, chain, data, session_id)

    def presignature_count(self, client_id: str) -> dict[str, int]:
        """How many precomputations the store holds for the client, per curve (ed25519: none needed)."""
        return self.store.count_presignatures(client_id)

    def bump_nonce_epoch(self) -> int:
        """After restoring this custodian's database: kill every precomputation and parked session
        of the restored copy (``SQLiteStore.bump_nonce_epoch``). Returns the new epoch."""
        return self.store.bump_nonce_epoch()

    def resume(self, data: bytes) -> Session:
        """A custodian operation parked with ``session.to_bytes()`` (see ``protocols.state``).

        The blob is single use: take it out of storage before resuming (``take_session``).
        """
        from mpc import state  # noqa: F401 - registers the engine's session classes

        setup = self._setup
        if setup is None:
            stored = self.store.load_setup()
            setup = None if stored is None else CustodianSetup.from_bytes(stored)
        context: dict[str, Any] = {"custodian": self}
        if setup is not None:
            context["setup"] = setup
        session = Session.from_bytes(data, **context)
        if isinstance(session, _CustodianOperation):
            self._consume_park(session)
        return session

    def parked_awaiting_round(self, data: bytes) -> Any:
        """Which round a parked operation waits for, without resuming it (its park id stays unused)."""
        from mpc import state  # noqa: F401 - registers the engine's session classes

        return Session.from_bytes(data, custodian=self, setup=self.setup).awaiting_round

    def _consume_park(self, session: _CustodianOperation) -> None:
        """Refuse a blob of another nonce epoch, too old, or resumed before (tombstone in the store)."""
        park_id, at, epoch = (getattr(session, name, None) for name in ("_park_id", "_parked_at", "_park_epoch"))
        if not isinstance(park_id, str) or not isinstance(at, int) or not isinstance(epoch, int):
            raise StateInvalid("this parked session carries no park id")
        if epoch != self.store.nonce_epoch() or not time.time() - MAX_PARK_SECONDS < at <= time.time() + 60:
            raise StateInvalid("this parked session is of a restored database or too old: start the operation again")
        if not self.store.consume_park_id(park_id, at, time.time() - MAX_PARK_SECONDS):
            raise StateInvalid("this parked session was resumed already: start the operation again")

    # --- helpers used by the operations -------------------------------------------------------
    def _webhook(self) -> BackupWebhook:
        if self.webhook is None:
            raise StateInvalid("this backup is self-managed but no webhook is configured")
        return self.webhook

    @staticmethod
    def _require_signing(record: ClientRecord) -> None:
        if not record.has_wallet:
            raise WalletNotFound("this client has no wallet")
        if record.signing_share_status != SigningShareStatus.STORED_CLIENT.value:
            raise StateInvalid("signing shares are not STORED_CLIENT")

    def _load_share(self, client_id: str, kind: str, method: str, curve: str) -> Any:
        data = self.store.get_share(client_id, kind, method, curve)
        if data is None and kind == "backup" and self.store.backups(client_id).get(method, ("", False))[1]:
            data = self._webhook().fetch(client_id, method, curve)
            try:
                return decode_share(curve, CUSTODIAN_PARTY, data)
            except MPCError:
                raise WebhookFailed("the fetch webhook returned a malformed share") from None
        if data is None:
            raise (BackupNotFound if kind == "backup" else WalletNotFound)(f"no {kind} share for {curve}")
        return decode_share(curve, CUSTODIAN_PARTY, data)

    def _check_free(self, client_id: str) -> None:
        record = self.store.client(client_id)
        if record.operation and (record.operation_expires or 0) > time.time():
            raise OperationInProgress(f"operation {record.operation} is running for this client")

    def _acquire(self, client_id: str, operation: str) -> None:
        with self.store.transaction():
            self._check_free(client_id)
            self.store.update_client(client_id, operation=operation,
                                     operation_expires=time.time() + OPERATION_TIMEOUT_SECONDS)

    def _release(self, client_id: str) -> None:
        self.store.update_client(client_id, operation=None, operation_expires=None)


MAX_PARK_SECONDS = 86_400.0  # a parked operation older than this is refused (its tombstone purged)


def _default_store() -> SQLiteStore:
    """The default store: a SQLite file in ``default_home()`` (``$PORTAL_MPC_HOME``)."""
    home = default_home()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return SQLiteStore(str(home / "custodian.sqlite3"))


def _public_keys_payload(shares: Mapping[str, Any]) -> dict[str, str]:
    return {curve: shares[curve].public_key.hex() for curve in CURVES}


class _CustodianOperation(Composite):
    """A custodian operation: a composite session that stores its outcome and errors as engine errors."""

    operation = "operation"
    exclusive = True
    _transient = ("custodian", "store")  # not state: given back by Custodian.resume

    def __init__(self, custodian: Custodian, client_id: str, session_id: bytes | None) -> None:
        super().__init__(session_id, CUSTODIAN_PARTY, PARTIES)
        self.custodian = custodian
        self.store = custodian.store
        self.client_id = client_id
        self._holds_lock = False
        if self.exclusive:
            custodian._check_free(client_id)

    def _resume(self, context: Mapping[str, Any]) -> None:
        custodian = context.get("custodian")
        if not isinstance(custodian, Custodian):
            raise UsageError("resuming a custodian operation needs custodian=...")
        self.custodian, self.store = custodian, custodian.store

    def _child_id(self, name: str) -> bytes:
        return child_session_id(self.session_id, name)

    def to_bytes(self) -> bytes:
        """The parked state, tagged with a fresh park id, the time and the store's nonce epoch:
        ``Custodian.resume`` resumes each park id once and only in the same epoch, so a copy of
        the blob (or a restored database) can never run the same nonces twice."""
        self._park_id = secrets.token_hex(16)
        self._parked_at = int(time.time())
        self._park_epoch = self.store.nonce_epoch()
        return super().to_bytes()

    def receive(self, msg: Message) -> list[Message]:
        # The per-client lock is taken at the client's first message after its hello (a session
        # whose client never gets going, e.g. cannot decrypt its backup, holds nothing) and is
        # released when the operation ends.
        starts_work = isinstance(msg, Message) and msg.payload.get("step") != "hello"
        newly = self.exclusive and starts_work and not self._holds_lock and not self.done and self.aborted is None
        if newly:
            self.custodian._acquire(self.client_id, self.operation)
            self._holds_lock = True
        try:
            return super().receive(msg)
        except (ProtocolAbort, KeyLocked):
            self._end()
            raise
        except InvalidMessage:
            if newly:  # a rejected message changes nothing, not even the lock
                self._end()
            raise

    def _end(self) -> None:
        if self._holds_lock:
            self.custodian._release(self.client_id)
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
            if dict(data) != self._hello():
                raise InvalidMessage("the client asks for another operation, client or parameters")
            return None
        if name == "stored" and self._children_done and self._expects_stored:
            # Compare with what the store holds now: a retried operation may have replaced the shares.
            record = self.store.client(self.client_id)
            stored = {"secp256k1": (record.secp256k1_public or b"").hex(), "ed25519": (record.ed25519_public or b"").hex()}
            if stored != self._public:
                raise InvalidMessage("these shares were replaced by a later operation")
            self._decode_stored(data, self._public)
            return None
        return self._decode_other_step(name, data)

    def _decode_other_step(self, name: str, data: Mapping[str, Any]) -> Any:
        raise InvalidMessage(f"unexpected step {name!r}")

    def _on_step(self, name: str, value: Any, sender: int) -> list[Message]:
        if name == "hello":
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

    def _decode_stored(self, data: Mapping[str, Any], expected: Mapping[str, str]) -> None:
        require_keys(data, CURVES)
        for curve in CURVES:
            if get_bytes(data, curve).hex() != expected[curve]:
                raise InvalidMessage("the client stored shares of other public keys")


class CustodianGenerate(_CustodianOperation):
    protocol = "wallet/generate"
    operation = "generate"
    _expects_stored = True

    def _start(self) -> list[Message]:
        return self._add_children({
            "secp256k1": ecdsa2p.KeygenP2(self._child_id("secp256k1"), self.custodian.setup),
            "ed25519": frost.DKGSession(self._child_id("ed25519"), CUSTODIAN_PARTY, PARTIES, 2),
        })

    def _on_children_done(self) -> list[Message]:
        shares = {curve: self.child(curve).result() for curve in CURVES}
        self._public = _public_keys_payload(shares)
        with self.store.transaction():
            for curve in CURVES:
                self.store.put_share(self.client_id, "signing", "", curve, shares[curve].to_bytes())
            self.store.update_client(
                self.client_id,
                secp256k1_public=shares["secp256k1"].public_key,
                ed25519_public=shares["ed25519"].public_key,
                signing_share_status=SigningShareStatus.STORED_DATABASE.value,
            )
        self._end()  # only the client's confirmation is left: a retried generate may go ahead
        return []


class CustodianBackup(_CustodianOperation):
    protocol = "wallet/backup"
    operation = "backup"

    def __init__(self, custodian: Custodian, client_id: str, session_id: bytes | None, method: str,
                 client_stores_backup: bool) -> None:
        self.method = _method_name(method)
        self.client_stores_backup = client_stores_backup
        super().__init__(custodian, client_id, session_id)

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "method": self.method, "client_stores_backup": self.client_stores_backup}

    def _start(self) -> list[Message]:
        secp = self.custodian._load_share(self.client_id, "signing", "", "secp256k1")
        ed = self.custodian._load_share(self.client_id, "signing", "", "ed25519")
        return self._add_children({
            "secp256k1": ecdsa2p.ReshareP2(self._child_id("secp256k1"), secp, for_signing=False),
            "ed25519": frost.RefreshSession(self._child_id("ed25519"), ed, PARTIES),
        })

    def _on_children_done(self) -> list[Message]:
        shares = {curve: self.child(curve).result() for curve in CURVES}
        self_managed = self.custodian.webhook is not None
        if self_managed:  # hand over first: a failing webhook leaves every status as it was
            for curve in CURVES:
                self.custodian.webhook.hand_over(self.client_id, self.method, curve, shares[curve].to_bytes())
        with self.store.transaction():
            self.store.delete_shares(self.client_id, "backup", self.method)
            if not self_managed:  # after a hand-over the custodian keeps no copy
                for curve in CURVES:
                    self.store.put_share(self.client_id, "backup", self.method, curve, shares[curve].to_bytes())
            self.store.set_backup(self.client_id, self.method,
                                  BackupShareStatus.STORED_CUSTODIAN_BACKUP_SHARE.value, self_managed)
        self._self_managed = self_managed
        if self.client_stores_backup:
            self._complete(self.custodian.get_client(self.client_id))
        return []

    def _decode_other_step(self, name: str, data: Mapping[str, Any]) -> Any:
        if name != "client_backup" or not self._children_done or self.client_stores_backup:
            raise InvalidMessage(f"unexpected step {name!r}")
        require_keys(data, CURVES)
        out = {}
        for curve in CURVES:
            item = data[curve]
            require_keys(item, ("box", "record"))
            out[curve] = (get_bytes(item, "box"), get_bytes(item, "record"))
        return out

    def _on_other_step(self, name: str, value: Any) -> list[Message]:
        with self.store.transaction():
            for curve, (box, record) in value.items():
                self.store.put_client_backup(self.client_id, self.method, curve, box, record)
            self.store.set_backup(self.client_id, self.method,
                                  BackupShareStatus.STORED_CLIENT_BACKUP_SHARE.value, self._self_managed)
        self._complete(self.custodian.get_client(self.client_id))
        return []


class _FromBackup(_CustodianOperation):
    """An operation that starts from the custodian backup shares of one method."""

    def __init__(self, custodian: Custodian, client_id: str, session_id: bytes | None, method: str) -> None:
        self.method = _method_name(method)
        super().__init__(custodian, client_id, session_id)
        # Loaded now, so a failing webhook (self-managed backups) is reported before any protocol.
        self._backup = {curve: custodian._load_share(client_id, "backup", self.method, curve) for curve in CURVES}
        self._public = {curve: self._backup[curve].public_key.hex() for curve in CURVES}

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "method": self.method}

    def _client_boxes(self) -> dict[str, Any]:
        boxes: dict[str, Any] = {}
        for curve in CURVES:
            stored = self.store.get_client_backup(self.client_id, self.method, curve)
            if stored is not None:
                boxes[curve] = {"box": stored[0].hex(), "record": stored[1].hex()}
        return boxes


class CustodianRecover(_FromBackup):
    protocol = "wallet/recover"
    operation = "recover"
    _expects_stored = True

    def _start(self) -> list[Message]:
        out = [self._step("client_backup", {"method": self.method, "boxes": self._client_boxes()})]
        return out + self._add_children({
            "secp256k1": ecdsa2p.ReshareP2(self._child_id("secp256k1"), self._backup["secp256k1"], for_signing=True,
                                           setup=self.custodian.setup),
            "ed25519": frost.RefreshSession(self._child_id("ed25519"), self._backup["ed25519"], PARTIES),
        })

    def _on_children_done(self) -> list[Message]:
        shares = {curve: self.child(curve).result() for curve in CURVES}
        with self.store.transaction():
            self.store.delete_shares(self.client_id, "signing", "")
            for curve in CURVES:
                self.store.put_share(self.client_id, "signing", "", curve, shares[curve].to_bytes())
            self.store.update_client(self.client_id, signing_share_status=SigningShareStatus.STORED_DATABASE.value)
        self._end()  # only the client's confirmation is left
        return []


class CustodianEject(_FromBackup):
    """Eject: the client gets the custodian backup shares and rebuilds each private key.

    The shares travel to the client in the clear as far as this layer goes: run it only over an
    authenticated, encrypted transport. MPC operations keep working afterwards.
    """

    protocol = "wallet/eject"
    operation = "eject"

    def _start(self) -> list[Message]:
        shares = {curve: self._backup[curve].to_bytes().hex() for curve in CURVES}
        self._children_done = True  # no child protocol: the client's "ejected" step ends it
        return [self._step("eject", {"method": self.method, "boxes": self._client_boxes(), "shares": shares})]

    def _decode_other_step(self, name: str, data: Mapping[str, Any]) -> Any:
        if name != "ejected" or self._next_from_peer < 2:
            raise InvalidMessage(f"unexpected step {name!r}")
        self._decode_stored(data, self._public)

    def _on_other_step(self, name: str, value: Any) -> list[Message]:
        self.store.update_client(self.client_id, ejected=1)
        self._complete(self.custodian.get_client(self.client_id))
        return []


class CustodianSign(_CustodianOperation):
    protocol = "wallet/sign"
    exclusive = False

    def __init__(self, custodian: Custodian, client_id: str, session_id: bytes | None, chain: str, data: bytes) -> None:
        self.chain = chain
        self.curve = curve_of_chain(chain)
        self.data = bytes(data)
        super().__init__(custodian, client_id, session_id)
        self._share = custodian._load_share(client_id, "signing", "", self.curve)

    def _hello(self) -> dict[str, Any]:
        return sign_hello(self.client_id, self.chain, self.data)

    def _start(self) -> list[Message]:
        precomputed = None
        if self.curve == "secp256k1":
            from mpc.presign import take_precomputation

            precomputed = take_precomputation(self.store, self.client_id, self._share)
        child = _sign_child(self.curve, self._child_id(self.curve), self._share, CUSTODIAN_PARTY, self.data,
                            precomputed)
        return self._add_children({self.curve: child})

    def _on_children_done(self) -> list[Message]:
        self._complete(sign_result(self.chain, self.curve, self._share.public_key, self.child(self.curve).result()))
        return []


def sign_hello(client_id: str, chain: str, data: bytes) -> dict[str, Any]:
    """What both parties must agree on before signing: client, chain and SHA-256 of the data."""
    return {"client_id": client_id, "chain": chain, "data_sha256": hashlib.sha256(data).hexdigest()}


def _method_name(method: str) -> str:
    if method not in BACKUP_METHODS:
        raise InputInvalid(f"unknown backup method; expected one of {', '.join(BACKUP_METHODS)}")
    return method


def _overall_backup_status(statuses: list[str]) -> str:
    """The client-level backup status: the most complete backup over all methods."""
    for status in (BackupShareStatus.STORED_CLIENT_BACKUP_SHARE, BackupShareStatus.STORED_CUSTODIAN_BACKUP_SHARE):
        if status.value in statuses:
            return status.value
    return BackupShareStatus.NOT_CREATED.value


def _sign_child(curve: str, session_id: bytes, share: Any, party: int, data: bytes,
                precomputed: ecdsa2p.C3Precomputation | None = None,
                decryption_guard: ecdsa2p.DecryptionGuard | None = None) -> Any:
    """The signing session of one party for one curve: two-party ECDSA (the custodian with its
    precomputation, if any; the client with its decryption guard), or FROST in one round trip
    (the client initiates)."""
    try:
        if curve == "secp256k1":
            if party == CLIENT_PARTY:
                return ecdsa2p.SignP1(session_id, share, data, decryption_guard=decryption_guard)
            return ecdsa2p.SignP2(session_id, share, data, precomputed=precomputed)
        if party == CLIENT_PARTY:
            return frost.InitiatorSession(session_id, share, CUSTODIAN_PARTY, data)
        return frost.ResponderSession(session_id, share, CLIENT_PARTY, data)
    except KeyLocked:
        raise KeyLockedError() from None
    except UsageError as exc:
        raise from_protocol_error(exc) from None


def sign_result(chain: str, curve: str, public_key: bytes, signature: Any) -> SignResult:
    if curve == "secp256k1":
        return SignResult(chain, curve, public_key, signature.to_bytes(), signature.r, signature.s,
                          signature.recid, signature.to_der())
    return SignResult(chain, curve, public_key, bytes(signature))


