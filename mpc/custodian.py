"""The custodian role (the service backend): ``mpc.Custodian(store)``.

Each operation returns a session (``protocols.rounds.Session``-compatible) that any transport can
drive against the client's session for the same operation; ``mpc.run_local`` drives both in
memory. The custodian stores its shares and the statuses in its store, each change in one
transaction. One state-changing operation (generate, backup, recover) runs per client at a time.

Operation flows (custodian side; child protocols run side by side through ``Composite``):
  generate  ecdsa2p keygen (P2) + FROST DKG 2-of-2 → store shares, STORED_DATABASE;
            client's "stored" step → STORED_CLIENT (the wallet exists from then on)
  backup    a fresh nonce; the client proves it holds its signing shares ("possession",
            ``mpc.backup.possession``; failures end it, not counted) → ecdsa2p reshare for backup +
            FROST refresh → custodian backup shares stored as a pending version,
            STORED_CUSTODIAN_BACKUP_SHARE; then the client's proof of its new backup shares
            with its encrypted backup share (default) → STORED_CLIENT_BACKUP_SHARE (customer-kept:
            when ``stored_client_backup_share`` gets the backup's confirmation)
  recover   sends the stored encrypted client backup share with a fresh nonce; the client proves
            it decrypted it ("possession", ``mpc.backup.possession``; failures count, ``mpc.backup.attempts``);
            ecdsa2p reshare for signing + FROST refresh from the backup shares → new signing
            shares replace the old ones, STORED_DATABASE; client's "stored" step → STORED_CLIENT
  eject     the same first two steps, then the custodian backup shares go to the client
  sign      ecdsa2p sign (P2) or FROST sign; refused unless signing shares are STORED_CLIENT
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import secrets
import time
from functools import cached_property
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mpc import hd
from mpc.backup import possession
from mpc.addresses import CHAIN_CURVES, addresses
from mpc.backup.attempts import AttemptCounter
from mpc.backup.versions import CONFIRMATION_ROW, OPRF_KEY_ROW, BackupVersions, storage_name
from mpc.errors import (
    BackupNotFound,
    InputInvalid,
    PossessionProofFailed,
    ShareReplaced,
    WebhookFailed,
    OperationInProgress,
    StateInvalid,
    WalletAlreadyExists,
    WalletNotFound,
)
from mpc.status import BackupShareStatus, SigningShareStatus
from mpc.operation import CustodianOperation, method_name
from mpc.presign import CustodianPresign, PrecomputationPool
from mpc.signing import SHARE_REFERENCE, CustodianSign, client_share_id, share_digest
from mpc.storage.ledger import SHARE_REPLACED, RevocationLedger
from mpc.storage.store import ClientRecord, SQLiteStore
from mpc.backup.custodian_ops import CustodianBackup, CustodianEject, CustodianRecover, _StoresSigningShares
from mpc.backup.webhook import BackupWebhook
from mpc.wallet import (
    ClientView,
    BACKUP_METHODS,
    CLIENT_PARTY,
    CURVES,
    CUSTODIAN_PARTY,
    DEFAULT_METHOD,
    PARTIES,
    decode_share,
    curve_of_chain,
    default_home,
)
from protocols import ecdsa2p, frost, oprf, randomness
from protocols.ecdsa2p import CustodianSetup
from protocols.errors import InvalidMessage, MPCError, ProofError
from protocols.rounds import Message, Session
from protocols.state import register_attrs

__all__ = ["Custodian", "OPERATION_TIMEOUT_SECONDS"]

log = logging.getLogger("mpc.custodian")

OPERATION_TIMEOUT_SECONDS = 600.0  # the default lease of the per-client operation lock (Custodian(lock_ttl=...))


class Custodian:
    """The service backend: holds custodian shares, statuses and (by default) encrypted client backups.

    Each operation takes the client id and returns the custodian's session, which runs against
    the device's session for the same operation (``mpc.Client``). Example::

        custodian = mpc.Custodian(open_store("custodian.sqlite3"))  # sealed: $PORTAL_MPC_STORE_KEY_FILE
        client_id = custodian.create_client()
        mpc.run_local(client.generate(), custodian.generate(client_id))
        mpc.run_local(client.sign("ethereum", digest32), custodian.sign(client_id, "ethereum", digest32))
        mpc.run_local(client.presign(8), custodian.presign(client_id, 8))  # later ECDSA signs use them
        custodian.get_client(client_id)["signing_share_status"]            # "STORED_CLIENT"

    ``ledger``: a revocation ledger (``mpc.storage.ledger``) attached to the store (and reconciled)
    first; ``open_store`` attaches the one ``$PORTAL_MPC_LEDGER`` names. With it, a database
    restore undoes no revocation: replaced signing shares, tokens, attempt counts, used nonces.
    """

    def __init__(
        self,
        store: SQLiteStore | None = None,
        *,
        setup: CustodianSetup | None = None,
        webhook: BackupWebhook | None = None,
        security_level: ecdsa2p.SecurityLevel | None = None,
        lock_ttl: float = OPERATION_TIMEOUT_SECONDS,
        backup_methods: Iterable[str] = BACKUP_METHODS,
        ledger: RevocationLedger | None = None,
    ) -> None:
        if store is not None and not isinstance(store, SQLiteStore):
            raise InputInvalid("Custodian takes a store: mpc.SQLiteStore(path), PostgresStore, or open_store(url)")
        if not lock_ttl > 0:
            raise InputInvalid("lock_ttl must be a positive number of seconds")
        # The lease of the per-client operation lock: an operation abandoned without ending
        # (a crash) blocks the client's next one for at most this long.
        self.lock_ttl = float(lock_ttl)
        # mpc.service.server sets this: frees a live lock whose holder is neither parked nor being stepped.
        self.lock_reclaim: Callable[[str], bool] | None = None
        self.store = store if store is not None else _default_store()
        if ledger is not None and self.store.ledger is not ledger:  # reconciled before anything is served
            self.store.attach_ledger(ledger)
        self._setup = setup
        self.webhook = webhook
        # The backup methods this deployment accepts (the client names one in its hello).
        self.backup_methods = tuple(method_name(m) for m in backup_methods)
        # The deployment's level (every client's must be the same); None: the stored setup's,
        # or the default level for a new store.
        self.security_level = security_level
        self._nonce_key: bytes | None = None
        self._nonce_prf: randomness.DerivationKey | None = None
        # ECDSA precomputations, in this process's memory only (``mpc.presign``).
        self._precomputations = PrecomputationPool()

    @property
    def nonce_key(self) -> bytes:
        """The long-lived key of the PRF every single-use secret of an operation is derived from
        (``mpc.operation``; docs/threat-model.md, "Rollback"): made once per store, kept sealed
        in it (``SQLiteStore.nonce_key``), loaded at first use. Never in a parked state."""
        if self._nonce_key is None:
            self._nonce_key = self.store.nonce_key()
        return self._nonce_key

    @property
    def nonce_prf(self) -> randomness.DerivationKey:
        """``nonce_key`` made ready for ``randomness.derived`` once (``curves.randomness``: the same
        seeds, no hash keyed per step); held exactly as long as the key itself."""
        if self._nonce_prf is None:
            self._nonce_prf = randomness.DerivationKey(self.nonce_key)
        return self._nonce_prf

    @property
    def precomputations(self) -> PrecomputationPool:
        """This process's ECDSA precomputation pool (``mpc.presign``)."""
        return self._precomputations

    # --- setup --------------------------------------------------------------------------------
    @property
    def setup(self) -> CustodianSetup:
        """The long-lived ring-Pedersen setup: loaded from the store, else created once (at the
        security level) and stored. A stored setup of another level is refused (``StateInvalid``)."""
        if self._setup is None:
            data = self.store.load_setup()
            if data is not None:
                self._setup = CustodianSetup.from_bytes(data)
            else:
                with randomness.fresh():  # long-lived: never from an operation's derived stream
                    self._setup = ecdsa2p.default_setup(self.security_level or ecdsa2p.LEVEL_112)
                self.store.save_setup(self._setup.to_bytes())
        if self.security_level is not None and self._setup.public.level != self.security_level:
            raise StateInvalid(f"the stored setup is of security level {self._setup.public.level.name}, "
                               f"this custodian runs {self.security_level.name}")
        return self._setup

    # --- clients ------------------------------------------------------------------------------
    def create_client(self) -> str:
        """A new client id with no wallet yet."""
        client_id = secrets.token_hex(16)
        self.store.create_client(client_id, SigningShareStatus.NOT_CREATED.value)
        return client_id

    def get_client(self, client_id: str) -> ClientView:
        """The custodian's view of a client: statuses, public keys, addresses and its lockout
        (``lockout``: ``locked``, ``failed_attempts``, ``limit``, ``since``; ``mpc.backup.attempts``; ``mpc.wallet.ClientView``)."""
        record = self.store.client(client_id)
        backups = self.store.backups(client_id)
        view: ClientView = {
            "client_id": record.client_id,
            "signing_share_status": record.signing_share_status,
            "backup_share_status": _overall_backup_status([status for status, _ in backups.values()]),
            "backups": {method: {"status": status, "self_managed": managed,
                                 "pending": self.backup_versions.of(client_id, method).pending is not None}
                        for method, (status, managed) in backups.items()},
            "backup_methods": list(backups),
            "ejected": record.ejected,
            "lockout": self.attempts.lockout(client_id),
            "public_keys": {},
            "addresses": {},
            "accounts": hd.custodian_accounts(self.store, client_id),  # derived HD accounts (docs/hd.md)
        }
        if record.secp256k1_public and record.ed25519_public:
            view["public_keys"] = {"secp256k1": record.secp256k1_public.hex(), "ed25519": record.ed25519_public.hex()}
            view["addresses"] = addresses(record.secp256k1_public, record.ed25519_public)
        return view

    def stored_client_backup_share(self, client_id: str, method: str = DEFAULT_METHOD,
                                   confirmation: Mapping[str, Any] | None = None) -> None:
        """The customer confirms it stored the client's encrypted backup share itself: the
        pending backup version becomes the current one (``mpc.backup.versions``).

        ``confirmation`` is the backup result's: the device's proof of knowledge of the new
        client backup shares (``mpc.backup.possession.CONFIRM_BACKUP``), bound to that backup's session
        and nonce. Without a valid one nothing changes (``PossessionProofFailed``, not counted):
        a token alone cannot replace the current backup. A pending version whose boxes the
        custodian keeps completes only when they arrive (``StateInvalid``)."""
        method = method_name(method)
        self.store.client(client_id)  # an unknown client is CLIENT_NOT_FOUND, as in get_client
        backups = self.store.backups(client_id)
        if method not in backups:
            raise StateInvalid("no custodian backup share for this method yet")
        pending = self.backup_versions.of(client_id, method).pending
        if pending is None:  # confirmed already, or a backup made before versioning
            self.store.set_backup(client_id, method, BackupShareStatus.STORED_CLIENT_BACKUP_SHARE.value,
                                  backups[method][1])
            return
        self._check_confirmation(client_id, method, pending, confirmation)
        self._promote_backup(client_id, method, pending)

    def _check_confirmation(self, client_id: str, method: str, pending: str,
                            confirmation: Mapping[str, Any] | None) -> None:
        """The customer's ``confirmation`` against what the pending version's backup recorded."""
        row = self.store.get_share(client_id, "backup", storage_name(method, pending), CONFIRMATION_ROW)
        if row is None:
            raise StateInvalid("the pending backup of this method keeps its boxes at the custodian: it becomes "
                               "current when the device sends them (run the backup again)")
        if confirmation is None:
            raise PossessionProofFailed("confirming a customer-kept backup needs the confirmation of the backup's "
                                        "result", culprit=CLIENT_PARTY)
        record = json.loads(row)
        try:
            possession.verify_points(possession.decode_public_shares(record["client_shares"]), confirmation,
                                     protocol=CustodianBackup.protocol, session_id=bytes.fromhex(record["session_id"]),
                                     client_id=client_id, method=method, nonce=bytes.fromhex(record["nonce"]),
                                     kind=possession.CONFIRM_BACKUP)
        except InvalidMessage:
            raise InputInvalid("the confirmation is malformed: pass the backup result's confirmation") from None
        except ProofError:
            raise PossessionProofFailed("the confirmation does not prove knowledge of the pending backup's client "
                                        "shares: nothing changed", culprit=CLIENT_PARTY) from None

    # --- backup versions (``mpc.backup.versions``) ------------------------------------------------
    @cached_property
    def backup_versions(self) -> BackupVersions:
        """Which backup version of each client and method is current, which one pending."""
        return BackupVersions(self.store)

    def _promote_backup(self, client_id: str, method: str, version: str | None = None) -> bool:
        """The pending version (``version``, if given) becomes current; a webhook is told it may
        drop the old one."""
        before = self.backup_versions.promote(client_id, method, version)
        if before is None:
            return False
        if self.webhook is not None and before.current != before.pending:
            try:  # best effort: the new version is current already
                self.webhook.discard(client_id, storage_name(method, before.current))
            except WebhookFailed:
                log.warning("the webhook could not discard an old backup version", exc_info=True)
        return True

    def _evaluate_oprf(self, client_id: str, name: str, element: bytes) -> dict[str, str]:
        """The VOPRF evaluation of a ``PASSWORD`` backup version's key, with its proof."""
        data = self.store.get_share(client_id, "backup", name, OPRF_KEY_ROW)
        if data is None:
            raise BackupNotFound("this PASSWORD backup has no custodian evaluation key")
        key = oprf.ServerKey.from_bytes(data)
        evaluated, proof = oprf.voprf_blind_evaluate(key, element)
        return {"element": evaluated.hex(), "proof": proof.hex(), "public_key": key.public_key().hex()}

    # --- failed attempts (``mpc.backup.attempts``) -------------------------------------------------------
    @cached_property
    def attempts(self) -> AttemptCounter:
        """Failed proofs of possession per client; at the limit eject and recover are refused."""
        return AttemptCounter(self.store)

    def unlock(self, client_id: str) -> None:
        """The operator's action after a lock-out (``CLIENT_LOCKED_OUT``): the client may try again."""
        self.store.client(client_id)  # an unknown client raises CLIENT_NOT_FOUND
        self.attempts.unlock(client_id)

    def failed_attempts(self, client_id: str) -> int:
        """Failed proofs of possession since the last success or unlock."""
        return self.attempts.failures(client_id)

    def _require_backup(self, client_id: str, method: str | None) -> None:
        """Recover and eject need a complete backup of that method (of any method when the
        client's hello will name it), and a client not locked out."""
        self.attempts.check(client_id)
        record = self.store.client(client_id)
        backups = self.store.backups(client_id)
        wanted = list(backups) if method is None else [m for m in backups if m == method]
        if not record.has_wallet or not wanted:
            raise BackupNotFound("no backup for this client and method")
        if all(backups[m][0] != BackupShareStatus.STORED_CLIENT_BACKUP_SHARE.value for m in wanted):
            raise StateInvalid("this needs a backup whose client share is stored (STORED_CLIENT_BACKUP_SHARE)")

    # --- operations ---------------------------------------------------------------------------
    def generate(self, client_id: str, session_id: bytes | None = None) -> CustodianGenerate:
        """The custodian's side of generate (ecdsa2p keygen P2 and the FROST DKG), against
        ``client.generate()``; ``WalletAlreadyExists`` if the client has a wallet."""
        record = self.store.client(client_id)
        if record.has_wallet:
            raise WalletAlreadyExists("this client already has a wallet")
        return CustodianGenerate(self, client_id, session_id)

    # The backup method (and, for backup, whether the customer keeps the encrypted client shares)
    # is the client's choice, carried by its hello: leave them None to take what the client
    # names (checked against ``backup_methods``), or name them to insist on them.
    def backup(self, client_id: str, method: str | None = None, session_id: bytes | None = None, *,
               client_stores_backup: bool | None = None) -> CustodianBackup:
        """A new backup version of the client's signing shares (``docs/backup.md``)."""
        self._require_signing(self.store.client(client_id))
        for curve in CURVES:  # a backup of replaced shares would bring them back
            self._refuse_replaced(client_id, curve, self._load_share(client_id, "signing", "", curve))
        return CustodianBackup(self, client_id, session_id, self._method_or_none(method), client_stores_backup)

    def recover(self, client_id: str, method: str | None = None, session_id: bytes | None = None) -> CustodianRecover:
        """New signing shares from the current backup of ``method`` (the client proves it holds
        its backup share first)."""
        method = self._method_or_none(method)
        self._require_backup(client_id, method)
        return CustodianRecover(self, client_id, session_id, method)

    def eject(self, client_id: str, method: str | None = None, session_id: bytes | None = None) -> CustodianEject:
        """Hand the custodian backup shares to the client, which rebuilds each private key."""
        method = self._method_or_none(method)
        self._require_backup(client_id, method)
        return CustodianEject(self, client_id, session_id, method)

    def _method_or_none(self, method: str | None) -> str | None:
        return None if method is None else self.allowed_method(method)

    def allowed_method(self, method: Any) -> str:
        """``method`` if this custodian accepts it (``InputInvalid`` otherwise)."""
        if not isinstance(method, str) or method_name(method) not in self.backup_methods:
            raise InputInvalid(f"this custodian accepts the backup methods {', '.join(self.backup_methods)}")
        return method

    def sign(self, client_id: str, chain: str, data: bytes, session_id: bytes | None = None, *,
             path: str | None = None) -> CustodianSign:
        """The custodian's side of signing ``data`` for ``chain``, against ``client.sign(chain, data)``;
        refused unless the signing shares are STORED_CLIENT. Uses a precomputation from this
        process's pool when it has one (``mpc.presign``). With ``path`` the custodian adds the path's
        public tweak to its share (docs/hd.md); the account must have been derived."""
        share, digest = self._signing_share(client_id, chain)
        session = CustodianSign(self, client_id, session_id, chain, data, path=path, share=share, digest=digest)
        self._refuse_replaced(client_id, session.curve, session._root)  # the root pair (a path tweaks a copy)
        return session

    def _signing_share(self, client_id: str, chain: str) -> tuple[Any, str]:
        """The client's custodian signing share on ``chain``'s curve and its ``share_digest``, once
        its row is checked (as ``_require_signing`` checks it): the row and the share in one read
        of the store (``signing_row``). An unknown chain is refused after that check
        (``InputInvalid``), as ``CustodianSign`` finds it."""
        known = CHAIN_CURVES.get(chain) if isinstance(chain, str) else None
        has_wallet, status, data = self.store.signing_row(client_id, known or "")
        self._require_signing_status(has_wallet, status)
        curve = known or curve_of_chain(chain)  # an unknown chain: InputInvalid
        if data is None:
            raise WalletNotFound(f"no signing share for {curve}")
        return decode_share(curve, CUSTODIAN_PARTY, data), share_digest(data)

    def derive(self, client_id: str, paths: Iterable[str], session_id: bytes | None = None) -> hd.CustodianDerive:
        """The custodian's side of ``client.derive(paths)``: the accounts of ``paths`` (docs/hd.md)."""
        self._require_signing(self.store.client(client_id))
        return hd.CustodianDerive(self, client_id, session_id, paths)

    # Precomputation (``mpc.presign``): single-use Paillier nonces for ECDSA, in memory only.
    def presign(self, client_id: str, count: int, session_id: bytes | None = None) -> Session:
        """Make ``count`` ECDSA precomputations for the client (its side: ``client.presign``)."""
        self._require_signing(self.store.client(client_id))
        self._refuse_replaced(client_id, "secp256k1", self._load_share(client_id, "signing", "", "secp256k1"))
        return CustodianPresign(self, client_id, session_id, count)

    def sign_presigned(self, client_id: str, chain: str, data: bytes, session_id: bytes | None = None, *,
                       path: str | None = None) -> CustodianSign:
        """The same as :meth:`sign` (which uses the precomputed pool by itself); kept as a name."""
        return self.sign(client_id, chain, data, session_id, path=path)

    def presignature_count(self, client_id: str) -> dict[str, int]:
        """How many precomputations this process's pool holds for the client's current signing
        share, per curve (ed25519: none needed)."""
        record = self.store.client(client_id)
        share = None
        if record.signing_share_status == SigningShareStatus.STORED_CLIENT.value:
            share = self._load_share(client_id, "signing", "", "secp256k1")
        return {"secp256k1": self._precomputations.count(client_id, share), "ed25519": 0}

    # --- the revocation ledger (``mpc.storage.ledger``) ------------------------------------------------
    @property
    def ledger(self) -> RevocationLedger | None:
        """The store's revocation ledger (None: none attached; a restore then undoes revocations)."""
        return self.store.ledger

    def _refuse_replaced(self, client_id: str, curve: str, share: Any) -> None:
        """``SHARE_REPLACED`` if a recover replaced this signing share, even if a restored
        database holds it again (the ledger remembers: docs/threat-model.md, Restore)."""
        if self.ledger is not None and self.ledger.share_replaced(client_id, curve, client_share_id(curve, share)):
            raise ShareReplaced(f"this client's stored {curve} signing share was replaced by a recover "
                                "(the database was restored to before it): recover again")

    def _revoke_signing_shares(self, client_id: str) -> None:
        """Before a recover's new signing shares replace the stored ones: the ledger records
        the old ones as replaced (first: should the database's write fail, they stay refused)."""
        if self.ledger is None:
            return
        for curve in CURVES:
            share = self._load_share(client_id, "signing", "", curve)
            self.ledger.append(SHARE_REPLACED, client_id, curve=curve, share=client_share_id(curve, share))

    def _consume_possession_nonce(self, client_id: str, nonce: bytes) -> bool:
        """Whether this possession proof's nonce is fresh (and is now consumed in the ledger): a
        recorded proof replayed into a restored parked session finds it consumed."""
        return self.ledger is None or self.ledger.consume_nonce(client_id, "possession", nonce)

    def bump_nonce_epoch(self) -> int:
        """Kill every parked session of this database (``SQLiteStore.bump_nonce_epoch``): defence
        in depth after a restore, not needed for safety (docs/threat-model.md, "Rollback").
        Returns the new epoch."""
        return self.store.bump_nonce_epoch()

    def resume(self, data: bytes) -> Session:
        """A custodian operation parked with ``session.to_bytes()`` (see ``protocols.state``).

        The blob is single use: take it out of storage before resuming (``take_session``).
        """
        return self._admit(self._decode(data))

    def _decode(self, data: bytes) -> Session:
        """A parked operation decoded, *not* admitted (its park id not consumed): the networked
        service's optimistic step (``mpc.service.worker``) runs it and calls ``_admission`` in the
        transaction that commits the step; nothing it computed leaves before that commit."""
        setup = self._setup
        if setup is None:
            stored = self.store.load_setup()
            setup = self._setup = None if stored is None else CustodianSetup.from_bytes(stored)
        context: dict[str, Any] = {"custodian": self}
        if setup is not None:
            context["setup"] = setup
        resolved: dict[tuple[str, ...], Any] = {}
        session = Session.from_bytes(data, resolve=functools.partial(self._resolve_share, resolved), **context)
        if isinstance(session, CustodianSign):
            session.check_references(resolved)
        elif resolved:
            raise StateInvalid("this parked operation names shares it does not use")
        return session

    def _resolve_share(self, resolved: dict[tuple[str, ...], Any], key: tuple[str, ...]) -> Any:
        """The share a parked sign names (``CustodianSign.share_references``): the client's signing
        share on the curve, loaded from the store, if it is still the version named (else
        ``SHARE_REPLACED``, as ``_refuse_replaced``); with a tweak, that share tweaked again.
        Recorded in ``resolved`` for ``CustodianSign.check_references`` (whose state it is)."""
        if len(key) not in (4, 5) or key[0] != SHARE_REFERENCE or key[2] not in CURVES:
            raise StateInvalid("this parked session names an unknown kind of share")
        share = resolved.get(key[:4])
        if share is None:
            share = resolved[key[:4]] = decode_share(key[2], CUSTODIAN_PARTY, self._named_share(*key[1:4]))
        if len(key) == 5:
            share = resolved[key] = _tweaked(share, key[4])
        return share

    def _named_share(self, client_id: str, curve: str, digest: str) -> bytes:
        """The client's stored signing share on ``curve`` (its bytes) if its ``share_digest`` is
        ``digest``; ``SHARE_REPLACED`` if another share took its place (a recover, a new wallet)
        or none is left."""
        data = self.store.get_share(client_id, "signing", "", curve)
        if data is None or not hmac.compare_digest(share_digest(data), digest):
            raise ShareReplaced(f"this client's {curve} signing share was replaced since this sign began "
                                "(a recover or a new wallet): sign again")
        return data

    def _admit(self, session: Session) -> Session:
        """The checks of every resumed session (its park id once, in this nonce epoch; a sign's
        share still the client's): ``resume`` after decoding, and the networked service's warm
        session (kept decoded by the worker that parked it) when it is taken again."""
        self._admission(session)()
        return session

    def _admission(self, session: Session) -> Callable[[], None]:
        """``_admit``'s checks of ``session`` as it is now (its park tag, read here), to run
        later: the networked service's optimistic step runs the session first, which re-tags it
        when it is encoded again, and admits it in the transaction that commits the step."""
        tag = session.park_tag if isinstance(session, CustodianOperation) else None

        def admit() -> None:
            if isinstance(session, CustodianOperation):
                self._consume_park(tag)
            self._check_share_current(session)
        return admit

    def _check_share_current(self, session: Session) -> None:
        """A sign's share is still the client's (``SHARE_REPLACED``: a recover may have replaced
        it since the session was made); nothing to check for another session. Here the ledger's
        word (a restored database may hold a replaced share again); a parked state's share is
        compared with the store's when it is decoded (``_named_share``: it is loaded from there),
        and through the service a recover also replaces the token and device key every step
        presents (docs/operations.md, The parked row)."""
        if isinstance(session, CustodianSign):
            self._refuse_replaced(session.client_id, session.curve, session._root)

    def parked_awaiting_round(self, data: bytes) -> Any:
        """Which round a parked operation waits for, without resuming it (its park id stays unused)."""
        return self._decode(data).awaiting_round

    def _consume_park(self, tag: tuple[str, int, int] | None) -> None:
        """Refuse a blob (its park tag: ``CustodianOperation.park_tag``) of another nonce epoch,
        too old, or resumed before (tombstone in the store)."""
        if tag is None:
            raise StateInvalid("this parked session carries no park id")
        park_id, at, epoch = tag
        if epoch != self.store.nonce_epoch() or not time.time() - MAX_PARK_SECONDS < at <= time.time() + 60:
            raise StateInvalid("this parked session is of a restored database or too old: start the operation again")
        if not self.store.consume_park_id(park_id, at, time.time() - MAX_PARK_SECONDS, epoch):
            raise StateInvalid("this parked session was resumed already, or its database was found restored: "
                               "start the operation again")

    # --- helpers used by the operations -------------------------------------------------------
    def _webhook(self) -> BackupWebhook:
        if self.webhook is None:
            raise StateInvalid("this backup is self-managed but no webhook is configured")
        return self.webhook

    @classmethod
    def _require_signing(cls, record: ClientRecord) -> None:
        """``WalletNotFound`` unless the client has a wallet, ``StateInvalid`` unless its signing
        shares are STORED_CLIENT."""
        cls._require_signing_status(record.has_wallet, record.signing_share_status)

    @staticmethod
    def _require_signing_status(has_wallet: bool, status: str) -> None:
        if not has_wallet:
            raise WalletNotFound("this client has no wallet")
        if status != _STORED_CLIENT:
            raise StateInvalid("signing shares are not STORED_CLIENT")

    def _load_share(self, client_id: str, kind: str, method: str, curve: str) -> Any:
        """A custodian share: the signing share (``method`` ""), or the current version's backup share."""
        name = self.backup_versions.current_name(client_id, method) if kind == "backup" else method
        data = self.store.get_share(client_id, kind, name, curve)
        if data is None and kind == "backup" and self.store.backups(client_id).get(method, ("", False))[1]:
            data = self._webhook().fetch(client_id, name, curve)
            try:
                return decode_share(curve, CUSTODIAN_PARTY, data)
            except MPCError:
                raise WebhookFailed("the fetch webhook returned a malformed share") from None
        if data is None:
            raise (BackupNotFound if kind == "backup" else WalletNotFound)(f"no {kind} share for {curve}")
        return decode_share(curve, CUSTODIAN_PARTY, data)

    def _check_free(self, client_id: str) -> None:
        """``OPERATION_IN_PROGRESS`` while another operation's lease on the client's lock runs,
        unless ``lock_reclaim`` (set by the networked service) finds its holder dead and frees it."""
        record = self.store.client(client_id)
        if record.operation and (record.operation_expires or 0) > time.time():
            if self.lock_reclaim is None or not self.lock_reclaim(client_id):
                raise OperationInProgress(f"operation {record.operation} is running for this client")

    def _acquire(self, client_id: str, operation: str, holder: str | None = None) -> None:
        """Take the client's operation lock: a lease of ``lock_ttl`` seconds held by the session
        ``holder`` (its id; the service renews the lease each time it parks the session)."""
        with self.store.transaction():
            self.store.lock_client(client_id)  # two acquirers never both see the lock free
            self._check_free(client_id)
            self.store.update_client(client_id, operation=operation, operation_expires=time.time() + self.lock_ttl,
                                     operation_session=holder)

    def _release(self, client_id: str, holder: str | None = None) -> None:
        """Free the client's operation lock; with ``holder``, only if that session holds it (a
        lease that lapsed and that another operation took since is not this session's to free)."""
        self.store.release_operation(client_id, holder)


_STORED_CLIENT = SigningShareStatus.STORED_CLIENT.value
_HEX = frozenset("0123456789abcdef")


def _tweaked(share: Any, tweak: str) -> Any:
    """``share`` tweaked by a parked sign's named tweak: lowercase hex of a scalar as
    ``CustodianSign.share_references`` writes it (``format(t, "x")``: no leading zero, "0" for
    zero, at most 64 digits), else ``STATE_INVALID``; so is a share that takes no tweak."""
    canonical = 0 < len(tweak) <= 64 and (tweak == "0" or tweak[0] != "0") and all(c in _HEX for c in tweak)
    apply = getattr(share, "tweaked", None)
    if not canonical or apply is None:
        raise StateInvalid("this parked sign names a malformed tweak")
    try:
        return apply(int(tweak, 16))
    except MPCError:
        raise StateInvalid("this parked sign names a malformed tweak") from None
MAX_PARK_SECONDS = 86_400.0  # a parked operation older than this is refused (its tombstone purged)


def _default_store() -> SQLiteStore:
    """The default store: a SQLite file in ``default_home()`` (``$PORTAL_MPC_HOME``, made 0700),
    sealed with the environment's key (``mpc.storage.backends.configured_sealer``: no key, no plaintext
    unless explicitly allowed)."""
    from mpc.storage._files import private_dirs
    from mpc.storage.backends import configured_sealer

    path = str(private_dirs(default_home()) / "custodian.sqlite3")
    return SQLiteStore(path, sealer=configured_sealer(path))


def _public_keys_payload(shares: Mapping[str, Any]) -> dict[str, str]:
    return {curve: shares[curve].public_key.hex() for curve in CURVES}


class CustodianGenerate(_StoresSigningShares):
    protocol = "wallet/generate"
    operation = "generate"
    _expects_stored = True

    def _start(self) -> list[Message]:
        return self._add_children({
            "secp256k1": ecdsa2p.KeygenP2(self._child_id("secp256k1"), self.custodian.setup),
            "ed25519": frost.DKGSession(self._child_id("ed25519"), CUSTODIAN_PARTY, PARTIES, 2),
            **hd.derivation_keygen_children(self._child_id, CUSTODIAN_PARTY),
        })

    def _on_children_done(self) -> list[Message]:
        shares = {curve: self.child(curve).result() for curve in CURVES}
        self._public = _public_keys_payload(shares)
        with self.store.transaction():
            self.store.delete_hd(self.client_id)  # a new wallet: new derivation key, no accounts
            for curve, derivation in hd.derivation_shares_of(self).items():
                self.store.put_hd(self.client_id, curve, "key", derivation.to_bytes())
            for curve in CURVES:
                self.store.put_share(self.client_id, "signing", "", curve, shares[curve].to_bytes())
            self.store.update_client(
                self.client_id,
                secp256k1_public=shares["secp256k1"].public_key,
                ed25519_public=shares["ed25519"].public_key,
                signing_share_status=SigningShareStatus.STORED_DATABASE.value,
            )
        self._remember(shares)
        self._end()  # only the client's confirmation is left: a retried generate may go ahead
        return []


def _overall_backup_status(statuses: list[str]) -> str:
    """The client-level backup status: the most complete backup over all methods."""
    for status in (BackupShareStatus.STORED_CLIENT_BACKUP_SHARE, BackupShareStatus.STORED_CUSTODIAN_BACKUP_SHARE):
        if status.value in statuses:
            return str(status.value)
    return str(BackupShareStatus.NOT_CREATED.value)


# Parkable state (``protocols.state``): every custodian operation (signing: ``mpc.signing``; backup,
# recover and eject: ``mpc.backup.custodian_ops``).
register_attrs(CustodianGenerate)
