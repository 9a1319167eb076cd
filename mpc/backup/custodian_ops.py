"""The custodian's backup operations: backup, recover and eject (``mpc.Custodian.backup``,
``recover``, ``eject``; the flows in ``mpc.custodian``'s module docstring and ``docs/backup.md``).

Each is a ``CustodianOperation`` over a :class:`BackupService`: what the operations use of
``mpc.Custodian`` (its store, setup, webhook, backup versions, attempt counter, VOPRF keys and
the revocation ledger), named as a protocol so that this module does not import the facade
(docs/architecture.md, layout by role). Their parked state keeps the names it had when they were
defined in ``mpc.custodian`` (``protocols.state``): a session parked before still resumes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any, NoReturn, Protocol

from mpc import hd
from mpc.backup import possession
from mpc.backup.attempts import AttemptCounter
from mpc.backup.methods import PasswordMethod
from mpc.backup.versions import CONFIRMATION_ROW, OPRF_KEY_ROW, BackupVersions, new_version, storage_name
from mpc.backup.webhook import BackupWebhook
from mpc.errors import InputInvalid, PossessionProofFailed, StateInvalid
from mpc.operation import CustodianOperation, Service
from mpc.status import BackupShareStatus, SigningShareStatus
from mpc.wallet import CLIENT_PARTY, CURVES, PARTIES, ClientView
from protocols import ecdsa2p, frost, oprf, randomness
from protocols.ecdsa2p import CustodianSetup
from protocols.encoding import get_bytes, require_keys
from protocols.errors import InvalidMessage, ProofError
from protocols.rounds import Message
from protocols.state import register_attrs

__all__ = ["BackupService"]

PASSWORD_METHOD = PasswordMethod.name


class BackupService(Service, Protocol):
    """What the backup, recover and eject operations (and generate) use of ``mpc.Custodian``."""

    webhook: BackupWebhook | None

    @property
    def setup(self) -> CustodianSetup:
        """The long-lived ring-Pedersen setup (``Custodian.setup``)."""

    @property
    def backup_versions(self) -> BackupVersions:
        """Which backup version of each client and method is current (``Custodian.backup_versions``)."""

    @property
    def attempts(self) -> AttemptCounter:
        """Failed proofs of possession per client (``Custodian.attempts``)."""

    def allowed_method(self, method: Any) -> str:
        """``method`` if the custodian accepts it (``Custodian.allowed_method``)."""

    def _require_backup(self, client_id: str, method: str | None) -> None: ...

    def _promote_backup(self, client_id: str, method: str, version: str | None = None) -> bool: ...

    def _evaluate_oprf(self, client_id: str, name: str, element: bytes) -> dict[str, str]: ...

    def _revoke_signing_shares(self, client_id: str) -> None: ...

    def _consume_possession_nonce(self, client_id: str, nonce: bytes) -> bool: ...


class _ServiceOperation(CustodianOperation):
    """The custodian operations of this module and ``mpc.custodian``'s generate: they use more of
    the facade than ``operation.Service`` names (:class:`BackupService`)."""

    custodian: BackupService
    method: str | None = None  # the backup method of backup, recover and eject

    def result(self) -> ClientView:
        """The custodian's view of the client once the operation completed (``get_client``)."""
        view: ClientView = super().result()
        return view

    @property
    def _chosen(self) -> str:
        """The backup method, once named (by the caller or the client's hello)."""
        if self.method is None:
            raise StateInvalid("the client's hello has not named the backup method yet")
        return self.method


def _client_shares_fingerprint(shares: Mapping[str, Any]) -> str:
    """What identifies a pair of signing shares beyond the public keys: the client's public
    shares as the custodian's shares record them (Q1; the client's FROST verifying share)."""
    parts = [shares["secp256k1"].q1.to_bytes(), shares["ed25519"].verifying_shares[CLIENT_PARTY].to_bytes()]
    return hashlib.sha256(b"".join(len(p).to_bytes(2, "big") + p for p in parts)).hexdigest()


class _StoresSigningShares(_ServiceOperation):
    """Generate and recover: a late "stored" step is refused once another operation replaced
    the signing shares this one stored."""

    _fingerprint = ""

    def _remember(self, shares: Mapping[str, Any]) -> None:
        self._fingerprint = _client_shares_fingerprint(shares)

    def _shares_still_current(self) -> bool:
        current = {curve: self.custodian._load_share(self.client_id, "signing", "", curve) for curve in CURVES}
        return hmac.compare_digest(_client_shares_fingerprint(current), self._fingerprint)


class CustodianBackup(_ServiceOperation):
    """Backup: reshare into a new *pending* backup version (``mpc.backup.versions``), which
    becomes current only when the client's encrypted shares arrive (or the customer confirms it
    keeps them); until then recover and eject use the previous complete backup.

    A bearer token starts nothing (``mpc.backup.possession``, ``docs/backup.md``): the custodian answers
    the client's hello with a fresh nonce ("challenge"); the client names its public shares and
    proves knowledge of its signing shares ("possession", ``SIGNING_SHARE``) before the custodian
    takes part in any resharing, and proves knowledge of the new client backup shares
    (``NEW_BACKUP_SHARE``, against the Q1' and verifying share of the pending custodian backup
    shares, what a recover will check) in its last step ("client_backup") before its boxes are
    stored and the new version is promoted. A failed proof ends the operation
    (``PossessionProofFailed``) and is not counted against the client's attempts: a token thief
    must not be able to lock the owner out of recover (``docs/threat-model.md``).

    ``PASSWORD`` backups also get the version's VOPRF key: after the reshare the client sends its
    blinded element ("oprf") and gets the evaluation with a proof ("oprf_evaluation") before it
    wraps its keys (``mpc.backup.methods.PasswordMethod``).
    """

    protocol = "wallet/backup"
    operation = "backup"

    def __init__(self, custodian: BackupService, client_id: str, session_id: bytes | None, method: str | None,
                 client_stores_backup: bool | None) -> None:
        self.method = method  # None: the client's hello names it
        self.client_stores_backup = client_stores_backup
        self._hardened = False
        self._evaluated = False
        self._possessed = False
        # Fresh per operation and kept in the parked state: a resumed session (even of a
        # restored database) checks proofs against this nonce only (``secrets``: unique, not secret).
        self._nonce = secrets.token_bytes(possession.NONCE_BYTES)
        super().__init__(custodian, client_id, session_id)

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "method": self.method, "client_stores_backup": self.client_stores_backup}

    def _expected_hello(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return _adopted(self.custodian, self._hello(), data)

    def _on_hello(self, hello: Mapping[str, Any]) -> None:
        self.method, self.client_stores_backup = hello["method"], hello["client_stores_backup"]
        self._hardened = self.method == PASSWORD_METHOD

    def _start(self) -> list[Message]:
        return [self._step("challenge", {"nonce": self._nonce.hex()})]

    def _check_possession(self, shares: Mapping[str, Any], proofs: Any, kind: str) -> None:
        """The client's proofs of ``kind`` against ``shares``; a failure is not counted."""
        try:
            possession.verify(shares, proofs, protocol=self.protocol, session_id=self.session_id,
                              client_id=self.client_id, method=self._chosen, nonce=self._nonce, kind=kind)
        except ProofError:
            what = "signing shares" if kind == possession.SIGNING_SHARE else "new backup shares"
            raise PossessionProofFailed(f"the client did not prove possession of its {what}: nothing was "
                                        "stored and the current backup is unchanged", culprit=CLIENT_PARTY) from None

    def _decode_possession(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The client's signing-share step: its public shares (another pair: a stale device,
        ``ShareReplaced``) and its proofs, checked against the stored signing shares."""
        require_keys(data, ("client_shares", "proofs"))
        signing = {curve: self.custodian._load_share(self.client_id, "signing", "", curve) for curve in CURVES}
        possession.check_public_shares(signing, data["client_shares"])
        self._check_possession(signing, data["proofs"], possession.SIGNING_SHARE)
        return signing

    def _on_possession(self, signing: Mapping[str, Any]) -> list[Message]:
        self._possessed = True
        return self._add_children({
            "secp256k1": ecdsa2p.ReshareP2(self._child_id("secp256k1"), signing["secp256k1"], for_signing=False),
            "ed25519": frost.RefreshSession(self._child_id("ed25519"), signing["ed25519"], PARTIES),
        })

    def _on_children_done(self) -> list[Message]:
        shares = {curve: self.child(curve).result() for curve in CURVES}
        webhook = self.custodian.webhook
        self_managed = webhook is not None
        version = new_version()
        name = storage_name(self._chosen, version)
        if webhook is not None:  # hand over first: a failing webhook leaves every status as it was
            for curve in CURVES:
                webhook.hand_over(self.client_id, name, curve, shares[curve].to_bytes())
        with self.store.transaction():
            self._name = self.custodian.backup_versions.start(self.client_id, self._chosen, version, self_managed)
            self._version = version
            if not self_managed:  # after a hand-over the custodian keeps no copy
                for curve in CURVES:
                    self.store.put_share(self.client_id, "backup", name, curve, shares[curve].to_bytes())
            if self._hardened:
                with randomness.fresh():  # a long-lived key: drawn fresh, like the custodian's setup
                    oprf_key = oprf.generate_key_pair()[0]
                self.store.put_share(self.client_id, "backup", name, OPRF_KEY_ROW, oprf_key.to_bytes())
            if self.client_stores_backup:  # what the customer's confirmation is checked against
                self.store.put_share(self.client_id, "backup", name, CONFIRMATION_ROW, self._confirmation_record(shares))
            if self.method not in self.store.backups(self.client_id):  # a first backup shows its own status
                self.store.set_backup(self.client_id, self._chosen,
                                      BackupShareStatus.STORED_CUSTODIAN_BACKUP_SHARE.value, self_managed)
        return []

    def _confirmation_record(self, shares: Mapping[str, Any]) -> bytes:
        """The session, nonce and new public client shares a ``CONFIRM_BACKUP`` proof binds."""
        record = {"session_id": self.session_id.hex(), "nonce": self._nonce.hex(),
                  "client_shares": possession.public_shares(shares)}
        return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()

    def _decode_other_step(self, name: str, data: Mapping[str, Any]) -> Any:
        if name == "possession" and not self._possessed:
            return self._decode_possession(data)
        if name == "oprf" and self._children_done and self._hardened and not self._evaluated:
            return _decode_oprf_request(data)
        if name != "client_backup" or not self._children_done:
            raise InvalidMessage(f"unexpected step {name!r}")
        if self._hardened and not self._evaluated:
            raise InvalidMessage("a PASSWORD backup asks for the custodian's evaluation first")
        return self._decode_client_backup(data)

    def _decode_client_backup(self, data: Mapping[str, Any]) -> dict[str, tuple[bytes, bytes]]:
        """The client's last step: its boxes (none when the customer keeps them) and its proofs
        of the new client backup shares, against the pending custodian backup shares."""
        require_keys(data, ("possession",) if self.client_stores_backup else ("boxes", "possession"))
        boxes = {} if self.client_stores_backup else _decode_client_boxes(data["boxes"])
        pending = {curve: self.child(curve).result() for curve in CURVES}
        self._check_possession(pending, data["possession"], possession.NEW_BACKUP_SHARE)
        return boxes

    def _on_other_step(self, name: str, value: Any) -> list[Message]:
        if name == "possession":
            return self._on_possession(value)
        if name == "oprf":
            self._evaluated = True
            return [self._step("oprf_evaluation", self.custodian._evaluate_oprf(self.client_id, self._name, value))]
        if not self.client_stores_backup:  # the customer's confirmation promotes its version
            with self.store.transaction():
                for curve, (box, record) in value.items():
                    self.store.put_client_backup(self.client_id, self._name, curve, box, record)
                self.custodian._promote_backup(self.client_id, self._chosen, self._version)
        self._complete(self.custodian.get_client(self.client_id))
        return [self._step("backup_stored", {"method": self._chosen})]  # the device finishes on it


def _decode_client_boxes(data: Any) -> dict[str, tuple[bytes, bytes]]:
    """The client's encrypted backup shares: one box and key record per curve."""
    require_keys(data, CURVES)
    out = {}
    for curve in CURVES:
        item = data[curve]
        require_keys(item, ("box", "record"))
        out[curve] = (get_bytes(item, "box"), get_bytes(item, "record"))
    return out


def _adopted(custodian: BackupService, hello: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The hello with the parameters left open (None) taken from the client's ``data``: the
    method checked against the custodian's ``backup_methods``, the storage choice a boolean."""
    hello = dict(hello)
    if hello.get("method") is None:
        try:
            hello["method"] = custodian.allowed_method(data.get("method"))
        except InputInvalid as exc:
            raise InvalidMessage(exc.message) from None
    if "client_stores_backup" in hello and hello["client_stores_backup"] is None:
        if not isinstance(data.get("client_stores_backup"), bool):
            raise InvalidMessage("the backup hello needs client_stores_backup (a boolean)")
        hello["client_stores_backup"] = data["client_stores_backup"]
    return hello


def _decode_oprf_request(data: Mapping[str, Any]) -> bytes:
    """The client's blinded element, checked (a bad element is ``InvalidMessage``, nothing counted)."""
    require_keys(data, ("element",))
    element = get_bytes(data, "element", oprf.NE)
    oprf.deserialize_element(element)
    return element


class _FromBackup(_ServiceOperation):
    """An operation that starts from the custodian backup shares of one method.

    After the client's hello the custodian sends the encrypted client backup shares with a fresh
    nonce ("client_backup"); nothing else happens before the client proves that it decrypted
    them ("possession", ``mpc.backup.possession``). A failed proof counts against the client's attempts
    (``mpc.backup.attempts``) and ends the operation (``PossessionProofFailed``).
    """

    def __init__(self, custodian: BackupService, client_id: str, session_id: bytes | None, method: str | None) -> None:
        self.method = method  # None: the client's hello names it
        super().__init__(custodian, client_id, session_id)
        self._nonce = secrets.token_bytes(possession.NONCE_BYTES)
        self._possessed = False
        self._evaluated = False
        if method is not None:  # loaded now: a failing webhook is reported before any protocol
            self._load_backup()

    def _load_backup(self) -> None:
        method = self.method
        if method is None:
            raise StateInvalid("no backup method yet")
        self._backup = {curve: self.custodian._load_share(self.client_id, "backup", method, curve) for curve in CURVES}
        self._public = {curve: self._backup[curve].public_key.hex() for curve in CURVES}
        self._name = self.custodian.backup_versions.current_name(self.client_id, method)

    def _hello(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "method": self.method}

    def _expected_hello(self, data: Mapping[str, Any]) -> dict[str, Any]:
        hello = _adopted(self.custodian, self._hello(), data)
        if self.method is None:
            self.custodian._require_backup(self.client_id, hello["method"])
        return hello

    def _on_hello(self, hello: Mapping[str, Any]) -> None:
        if self.method is None:
            self.method = hello["method"]
            self._load_backup()

    def _start(self) -> list[Message]:
        data = {"method": self.method, "boxes": self._client_boxes(), "nonce": self._nonce.hex(),
                "oprf_public_key": self._oprf_public_key()}
        return [self._step("client_backup", data)]

    def _oprf_public_key(self) -> str:
        """The current version's VOPRF public key (hex; "" without one): a device holding boxes
        of another version (a customer-kept backup never confirmed) stops before any guess."""
        data = self.store.get_share(self.client_id, "backup", self._name, OPRF_KEY_ROW)
        return "" if data is None else oprf.ServerKey.from_bytes(data).public_key().hex()

    def _decode_other_step(self, name: str, data: Mapping[str, Any]) -> Any:
        if name == "oprf" and not self._possessed and not self._evaluated and self.method == PASSWORD_METHOD:
            return self._evaluate_guess(_decode_oprf_request(data))
        if name != "possession" or self._possessed:
            return self._decode_after_possession(name, data)
        if not self._evaluated:  # a session that had its guess evaluated was admitted then
            self.custodian.attempts.check(self.client_id)
        try:
            possession.verify(self._backup, data, protocol=self.protocol, session_id=self.session_id,
                              client_id=self.client_id, method=self._chosen, nonce=self._nonce)
        except ProofError:
            self._possession_failed("")
        if not self.custodian._consume_possession_nonce(self.client_id, self._nonce):
            self._possession_failed(": its nonce was used before (a proof replayed into a restored session)")
        return None

    def _possession_failed(self, why: str) -> NoReturn:
        """A failed (or replayed) proof counts against the client's attempts and ends the operation.
        One failed attempt counts once: the password guess of this session counted already."""
        attempts = self.custodian.attempts
        failures = attempts.failures(self.client_id) if self._evaluated else attempts.failed(self.client_id)
        raise PossessionProofFailed(
            f"the client did not prove possession of its backup share{why} "
            f"(failed attempt {failures} of {attempts.limit})", culprit=CLIENT_PARTY) from None

    def _evaluate_guess(self, element: bytes) -> dict[str, str]:
        """One password guess: counted and evaluated in one transaction (``AttemptCounter.admit``),
        so concurrent sessions never get more than the limit's evaluations; a valid possession
        proof afterwards forgives it. ``ClientLockedOut`` at the limit (nothing evaluated)."""
        with self.store.transaction():
            self.custodian.attempts.admit(self.client_id)
            return self.custodian._evaluate_oprf(self.client_id, self._name, element)

    def _on_other_step(self, name: str, value: Any) -> list[Message]:
        if name == "oprf":
            self._evaluated = True
            return [self._step("oprf_evaluation", value)]
        if name != "possession" or self._possessed:
            return self._on_step_after_possession(name, value)
        self._possessed = True
        self.custodian.attempts.succeeded(self.client_id)
        return self._on_possession()

    def _on_possession(self) -> list[Message]:
        raise NotImplementedError

    def _decode_after_possession(self, name: str, data: Mapping[str, Any]) -> Any:
        raise InvalidMessage(f"unexpected step {name!r}")

    def _on_step_after_possession(self, name: str, value: Any) -> list[Message]:
        raise InvalidMessage(f"unexpected step {name!r}")

    def _client_boxes(self) -> dict[str, Any]:
        boxes: dict[str, Any] = {}
        for curve in CURVES:
            stored = self.store.get_client_backup(self.client_id, self._name, curve)
            if stored is not None:
                boxes[curve] = {"box": stored[0].hex(), "record": stored[1].hex()}
        return boxes


class CustodianRecover(_FromBackup, _StoresSigningShares):
    protocol = "wallet/recover"
    operation = "recover"
    _expects_stored = True

    def _on_possession(self) -> list[Message]:
        return self._add_children({
            "secp256k1": ecdsa2p.ReshareP2(self._child_id("secp256k1"), self._backup["secp256k1"], for_signing=True,
                                           setup=self.custodian.setup),
            "ed25519": frost.RefreshSession(self._child_id("ed25519"), self._backup["ed25519"], PARTIES),
        })

    def _on_children_done(self) -> list[Message]:
        shares = {curve: self.child(curve).result() for curve in CURVES}
        self.custodian._revoke_signing_shares(self.client_id)
        with self.store.transaction():
            self.store.delete_shares(self.client_id, "signing", "")
            for curve in CURVES:
                self.store.put_share(self.client_id, "signing", "", curve, shares[curve].to_bytes())
            self.store.update_client(self.client_id, signing_share_status=SigningShareStatus.STORED_DATABASE.value)
        self._remember(shares)
        self._end()  # only the client's confirmation is left
        return []


class CustodianEject(_FromBackup):
    """Eject: the client gets the custodian backup shares and rebuilds each private key.

    The shares go out only after the client proved possession of its backup share, and then in
    the clear as far as this layer goes: run it only over an authenticated, encrypted transport
    (TLS). MPC operations keep working afterwards.
    """

    protocol = "wallet/eject"
    operation = "eject"

    def _on_possession(self) -> list[Message]:
        shares = {curve: self._backup[curve].to_bytes().hex() for curve in CURVES}
        # The derivation key shares too: the ejected wallet derives its accounts alone (docs/hd.md).
        derivation = {curve: share.secret.to_bytes().hex() for curve in CURVES
                      if (share := hd.custodian_derivation_share(self.store, self.client_id, curve)) is not None}
        self._children_done = True  # no child protocol: the client's "ejected" step ends it
        return [self._step("eject", {"method": self.method, "shares": shares, "derivation": derivation})]

    def _decode_after_possession(self, name: str, data: Mapping[str, Any]) -> Any:
        if name != "ejected" or not self._possessed:
            raise InvalidMessage(f"unexpected step {name!r}")
        self._decode_stored(data, self._public)

    def _on_step_after_possession(self, name: str, value: Any) -> list[Message]:
        self.store.update_client(self.client_id, ejected=1)
        self._complete(self.custodian.get_client(self.client_id))
        return []


# Parkable state (``protocols.state``) under the names these classes had in ``mpc.custodian``.
for _cls in (CustodianBackup, CustodianRecover, CustodianEject):
    register_attrs(_cls, f"mpc.custodian.{_cls.__qualname__}")
