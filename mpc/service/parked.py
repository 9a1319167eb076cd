"""The records of a parked custodian session (``mpc.service.store``, Parking): one as stored
(``ParkedSession``) and one an optimistic step parks in its commit (``NewPark``). Their own module,
below both ``mpc.service.store`` and ``mpc.service.leases``, which name them."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["NewPark", "ParkedSession"]


@dataclass(frozen=True)
class ParkedSession:
    """One parked custodian session (``data`` is secret-bearing and single use)."""

    session_id: str
    client_id: str
    operation: str
    data: bytes = field(repr=False)  # the session's state: secrets
    outbox: list[str] = field(repr=False)  # an eject's carries backup shares
    holds_lock: bool
    expires: float
    # The park's fingerprint (BLAKE2b-128 of the sealed state as stored: every park seals a fresh
    # park id under a fresh nonce, so two parks never share it): a worker uses the session it
    # kept decoded only for the park it made itself (``mpc.service.worker``, Warm sessions).
    version: bytes = field(default=b"", repr=False, compare=False)
    # The sealed state as stored (what the optimistic step's commit compares: ``commit_step``).
    sealed: bytes = field(default=b"", repr=False, compare=False)
    epoch: int = field(default=0, repr=False, compare=False)  # the nonce epoch its state carries


@dataclass(frozen=True)
class NewPark:
    """What an optimistic step parks in its commit (``ServiceStore.commit_step``): the stepped
    state (``to_bytes``, tagged with nonce epoch ``epoch``), the messages a client that resumes
    may lack (a sign's: this step's only; ``mpc.service.worker._outbox``) of which the first
    ``before`` came before this step, whether it holds the client's operation lock, and for how
    long it stays parked."""

    data: bytes = field(repr=False)  # secrets
    outbox: list[str] = field(repr=False)
    holds_lock: bool
    ttl: float
    epoch: int
    before: int = 0
