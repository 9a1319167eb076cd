"""The requests of ``mpc.service.server.CustodianService`` that need a credential beyond the client's
token: the operator's (``create_client``, ``get_client`` without a token, ``revoke_token``,
``issue_token``, ``revoke_device``, ``unlock_client``: the operator key or the operator's client
certificate) and the device's proof of possession (``mpc.service.credentials``).

:class:`OperatorRequests` is a part of ``CustodianService`` (a base class): the attributes it
declares are set by ``CustodianService.__init__``. The front door's rules are in the module
docstring of ``mpc.service.server`` and ``docs/operations.md`` (Security).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from mpc.custodian import Custodian
from mpc.errors import AuthFailed, EngineError, InputInvalid
from mpc.service import credentials, requests
from mpc.service.credentials import Claim
from mpc.service.guard import BoundedLog, OperatorKey, ServiceLimits, peer_common_name, peer_key
from mpc.service.observability import current_request
from mpc.service.store import ServiceStore, new_token
from mpc.service.worker import log
from mpc.wallet import ClientView, DeviceView, ServiceClientView

__all__ = ["OperatorRequests"]

Presigned = tuple[bytes, tuple[bytes, None]]  # ``credentials.take_presigned``: (challenge, answer)
Authorised = Claim | EngineError | None  # the device check done with the token's: grant, refusal, not done


class OperatorRequests:
    """The operator's requests and the device's credential check, as parts of ``CustodianService``."""

    # Set by CustodianService.__init__ (the front door's configuration).
    custodian: Custodian
    service: ServiceStore
    limits: ServiceLimits
    open_registration: bool
    _operator_key: OperatorKey | None
    _operator_cn: str | None
    _log: BoundedLog

    async def _authorise_device(self, ws: Any, request: dict[str, Any]) -> Claim | None:
        """The device's proof of possession (``mpc.service.credentials``): the challenge frame,
        the device's signed answer, checked before any work (``AUTH_FAILED``); None when the
        token suffices (``get_client`` of a client with no device key)."""
        wanted = await asyncio.to_thread(credentials.claim, self.service, self.custodian, request)
        return await self._prove_device(ws, request, wanted)

    def _token_and_claim(self, client_id: str, token: str, request: dict[str, Any],
                         presigned: Presigned | None = None) -> tuple[AuthFailed | None, Claim | None, Authorised]:
        """The token check (its refusal, returned), then, if it passed, which key must sign
        ``request`` (``credentials.claim``) and, when the request brought its signature
        (``presigned``: ``credentials.take_presigned``), ``credentials.authorise``: its grant,
        or its refusal returned for ``_prove_device`` to raise. One trip to a thread for all
        three (issue 30), in the order of separate trips: nothing is checked that an earlier
        check refused."""
        try:
            self.service.check_token(client_id, token)
        except AuthFailed as refused:
            return refused, None, None
        wanted = credentials.claim(self.service, self.custodian, request)
        if wanted is None or presigned is None:
            return None, wanted, None
        try:
            return None, wanted, credentials.authorise(self.service, self.custodian, request, wanted, *presigned)
        except EngineError as exc:
            return None, wanted, exc

    async def _prove_device(self, ws: Any, request: dict[str, Any], wanted: Claim | None,
                            authorised: Authorised = None) -> Claim | None:
        """The challenge for ``wanted`` (the key that must sign ``request``; None: the token
        suffices), the device's signed answer, and ``credentials.authorise``. On a kept
        connection the request may bring its signature over the challenge the previous result
        carried (``credentials.take_presigned``): then no challenge frame is sent, and
        ``_token_and_claim`` checked it already (``authorised``: its grant or refusal)."""
        if wanted is None:
            return None
        record = current_request()
        record.named(request["op"], "device")
        presigned, record.presigned = record.presigned, None
        if isinstance(authorised, EngineError):
            raise authorised
        if authorised is not None:
            return authorised
        answer: tuple[bytes, Mapping[str, Any] | None]
        if presigned is not None:  # signed over the challenge the connection's previous result carried
            challenge, answer = presigned
        else:
            challenge = credentials.new_challenge()
            await ws.send(requests.frame_text(record.frame({"challenge": challenge.hex()})))
            answer = credentials.parse_answer(await requests.receive(ws, self.limits.first_frame_timeout))
        grant: Claim = await asyncio.to_thread(credentials.authorise, self.service, self.custodian, request, wanted,
                                               challenge, answer)
        return grant

    def _client_view(self, client_id: str) -> ServiceClientView:
        """The custodian's view of the client plus its device key (``device``: the public key and
        since when, or None before the device enrolled)."""
        device = self.service.device(client_id)
        registered = None if device is None else DeviceView(public_key=device[0].hex(), since=device[1])
        return ServiceClientView(**self.custodian.get_client(client_id), device=registered)

    def _require_operator(self, ws: Any, request: dict[str, Any], *, registration: bool = False) -> None:
        """``AUTH_FAILED`` unless the request carries the operator key or comes with the
        operator's client certificate (or is a registration and registration is open)."""
        if "operator_key" in request:
            if self._operator_key is not None and self._operator_key.matches(request["operator_key"]):
                return
            self._log.warning(f"wrong operator key from {peer_key(ws.remote_address)}")
            raise AuthFailed()
        if self._operator_cn is not None and peer_common_name(ws.transport) == self._operator_cn:
            return
        if registration and self.open_registration:
            return
        raise AuthFailed()

    async def _operator_op(self, ws: Any, op: str, request: dict[str, Any]) -> Any:
        """The operator op ``op``'s result (``AUTH_FAILED`` without the operator credential)."""
        self._require_operator(ws, request)
        client_id = requests.parse_client_id(request)
        action: Callable[[str], Any] = {"get_client": self._client_view, "revoke_token": self._revoke_token,
                                        "issue_token": self._issue_token, "unlock_client": self._unlock_client,
                                        "revoke_device": self._revoke_device}[op]
        result = await asyncio.to_thread(action, client_id)
        if op != "get_client":
            log.info("operator %s for client %s from %s", op, client_id, peer_key(ws.remote_address))
        return result

    def _create_client(self) -> dict[str, str]:
        token = new_token()
        with self.custodian.store.transaction():
            client_id = self.custodian.create_client()
            self.service.set_token(client_id, token)
        return {"client_id": client_id, "token": token}

    def _revoke_token(self, client_id: str) -> dict[str, Any]:
        self.custodian.store.client(client_id)  # CLIENT_NOT_FOUND for an unknown id
        self.service.revoke_token(client_id)
        return {"client_id": client_id, "revoked": True}

    def _issue_token(self, client_id: str) -> dict[str, str]:
        self.custodian.store.client(client_id)
        return {"client_id": client_id, "token": self.service.replace_token(client_id)}

    def _revoke_device(self, client_id: str) -> ClientView:
        """The operator: forget the client's device key (a stolen device); the owner then
        recovers onto a new device, or enrols a device that holds the signing shares."""
        self.custodian.store.client(client_id)
        self.service.revoke_device(client_id)
        return self._client_view(client_id)

    def _unlock_client(self, client_id: str) -> ClientView:
        unlock = getattr(self.custodian, "unlock", None)
        if unlock is None:
            raise InputInvalid("not supported")
        unlock(client_id)
        return self._client_view(client_id)

    def _stored_client_backup_share(self, client_id: str, method: str,
                                    confirmation: dict[str, Any] | None) -> ClientView:
        self.custodian.stored_client_backup_share(client_id, method, confirmation)
        return self.custodian.get_client(client_id)
