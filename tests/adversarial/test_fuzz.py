"""Fuzzing every delivery of every protocol with hostile wire bytes (issue 10, "Fuzzing").

For each scenario (two-party ECDSA keygen / sign / refresh / backup resharing, FROST DKG / sign
/ refresh / reshare, wallet generate / backup / recover / sign on both curves / eject), one
honest run is recorded with a snapshot before each delivery (``harness.record``). For each
delivery, hypothesis mutates the message's bytes (``mutations.wire_mutations``) and the mutated
bytes go to a copy of the receiver at that point. The rules:

- the only errors are ``InvalidMessage`` (state unchanged: same awaited round, not aborted),
  ``ProtocolAbort`` naming the sender (or nobody where FROST with three or more parties cannot
  tell), ``KeyLocked`` only for the ECDSA client facing the final ciphertext, and at the wallet
  level typed ``EngineError`` subclasses; never another exception type and never a hang
  (``time_limit``);
- a mutated message that is accepted must still lead to correct outputs (the run goes on to
  the end; a share that works, a signature that verifies) or to a refusal as above;
- after every rejected message, the same receiver still accepts the original message and the
  run finishes correctly.

Deliveries whose honest processing is slow (the Paillier-key proofs) get fewer examples; the
``slow`` variant runs many more of them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from protocols.errors import InvalidMessage, MPCError, ProtocolAbort
from protocols.rounds import Message
from tests.adversarial.harness import SCENARIOS, Checkpoint, acceptable_refusal, finish, record, time_limit
from tests.adversarial.mutations import wire_mutations

FAST_EXAMPLES = 8
HEAVY_EXAMPLES = 3
SLOW_EXAMPLES = 80


def distinct(checkpoints: list[Checkpoint]) -> list[tuple[Checkpoint, float]]:
    """One checkpoint per (round, sender, receiver role) with the time its honest delivery took."""
    seen: set[tuple[int, int]] = set()
    out = []
    for cp in checkpoints:
        key = (cp.message.round, cp.message.sender)
        if key in seen:
            continue
        seen.add(key)
        sessions, _ = cp.fresh()
        started = time.perf_counter()
        sessions[cp.receiver].receive(cp.message)
        _release_locks(sessions)
        out.append((cp, time.perf_counter() - started))
    return out


_recorded: dict[str, list[tuple[Checkpoint, float]]] = {}


def checkpoints_of(name: str) -> list[tuple[Checkpoint, float]]:
    if name not in _recorded:
        _recorded[name] = distinct(record(SCENARIOS[name]))
    return _recorded[name]


class Victim:
    """The receiver's sessions at a checkpoint; replaced by a fresh copy once a message is taken."""

    def __init__(self, cp: Checkpoint) -> None:
        self.cp = cp
        self.sessions, self.queue = cp.fresh()
        self.rejected = 0

    def renew(self) -> None:
        _release_locks(self.sessions)
        self.sessions, self.queue = self.cp.fresh()


def _release_locks(sessions: dict[int, Any]) -> None:
    """A copy of a custodian operation dropped mid-run must not keep the client's operation lock."""
    for session in sessions.values():
        end = getattr(session, "_end", None)
        if end is not None:
            end()


def deliver(victim: Victim, data: bytes) -> str:
    cp = victim.cp
    scenario = cp.scenario
    sender = cp.message.sender
    try:
        msg = Message.from_bytes(data)
    except InvalidMessage:
        return "unparsed"
    receiver = victim.sessions[cp.receiver]
    waiting = receiver.awaiting_round
    try:
        replies = receiver.receive(msg)
    except InvalidMessage as exc:
        assert not isinstance(exc, ProtocolAbort)
        assert receiver.aborted is None and receiver.awaiting_round == waiting, cp.label
        victim.rejected += 1
        return "invalid"
    except MPCError as exc:
        # The party blamed may be the one the mutated message names (a mutation can change the
        # sender field; a transport authenticates it, so that is the party the receiver sees).
        assert any(acceptable_refusal(exc, cp.receiver, claimed, locks=scenario.locks,
                                      attributable=scenario.attributable)
                   for claimed in {sender, msg.sender}), f"{cp.label}: {exc!r}"
        victim.renew()
        return type(exc).__name__
    # Accepted: the run goes on; nothing wrong may come out of it.
    addressed = [(p, m) for m in replies for p in _targets(victim.sessions, m)]
    outcome = finish(victim.sessions, victim.queue, addressed)
    if outcome.error is not None and outcome.party != sender:
        assert acceptable_refusal(outcome.error, outcome.party, sender, locks=scenario.locks,
                                  attributable=scenario.attributable), f"{cp.label}: later {outcome.error!r}"
    honest = {p: r for p, r in outcome.results.items() if p != sender}
    scenario.check(honest)
    victim.renew()
    return "accepted"


def _targets(sessions: dict[int, Any], msg: Message) -> list[int]:
    if msg.recipient is not None:
        return [msg.recipient]
    return [p for p in sessions if p != msg.sender]


def finish_after_rejections(victim: Victim) -> None:
    """The receiver that refused the mutated copies accepts the original and the run completes."""
    cp = victim.cp
    outcome = finish(victim.sessions, victim.queue, [(cp.receiver, cp.message)])
    assert outcome.error is None and not outcome.stalled, f"{cp.label}: {outcome}"
    cp.scenario.check(outcome.results)


def fuzz(name: str, fast: int, heavy: int) -> None:
    for cp, elapsed in checkpoints_of(name):
        victim = Victim(cp)
        examples = heavy if elapsed > 0.1 else fast

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(data=wire_mutations(cp.message.to_bytes()))
        def one(data: bytes) -> None:
            with time_limit(60):
                deliver(victim, data)

        one()
        with time_limit(60):
            finish_after_rejections(victim)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_hostile_bytes_on_every_delivery(name: str) -> None:
    fuzz(name, FAST_EXAMPLES, HEAVY_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_hostile_bytes_on_every_delivery_thorough(name: str) -> None:
    fuzz(name, SLOW_EXAMPLES, SLOW_EXAMPLES // 4)
