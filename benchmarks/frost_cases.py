"""FROST benchmark cases: DKG and signing, end to end (all parties in memory) and per party.

"Per party" is one party's own work in every round (its ``start`` plus the ``receive`` calls
that complete a round), with the other parties' messages prepared untimed in ``setup``;
message decoding from the wire is included, as a real transport would need it.

Two cases split the one-round-trip 2-of-2 sign (``presign_cases``) into its parts, so that the
same run shows what the protocol layers add: the libsodium calls alone (the sequence one round
trip makes, through cffi with no Python layer: the floor while every check stays, see
benchmarks/README.md "FROST sign") and the three messages through their wire encoding and
strict decoding (``protocols.rounds.Message``) with nothing else.

``python -m benchmarks.frost_cases [passes]`` prints the round trip's per-call profile (the
table of benchmarks/README.md, "FROST sign, round two"): each libsodium call timed inside real
round trips, each party's step, PyNaCl sign, and the rest (Python) as the difference, all in CPU
time and in one process.
"""

from __future__ import annotations

import importlib
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import protocols.frost as frost
from benchmarks.reference_cases import REF_NACL
from benchmarks.timing import Case
from curves import ed25519
from protocols.frost.ciphersuite import FROST_ED25519_SHA512 as SUITE
from protocols.frost.dkg import DKGSession
from protocols.frost.sign import SignSession
from protocols.rounds import Message, Session

MESSAGE = b"benchmark message: 32 bytes long"


def _prepare(make: Callable[[bytes], list[Session]], stage: int) -> Callable[[], Any]:
    """Setup for party ``make(...)[0]``'s work at ``stage`` (0 = start, k = receiving round k).

    Runs every party in lockstep up to that stage (untimed) and returns the session with the
    wire bytes it is about to receive.
    """

    def setup() -> tuple[Session, list[bytes]]:
        sessions = make(secrets.token_bytes(32))
        me = sessions[0]
        if stage == 0:
            return me, []
        outgoing = [m for s in sessions for m in s.start()]
        for round_no in range(1, stage + 1):
            inbox = {
                s.party_id: [m.to_bytes() for m in outgoing if m.sender != s.party_id and m.recipient in (None, s.party_id)]
                for s in sessions
            }
            if round_no == stage:
                return me, inbox[me.party_id]
            outgoing = [x for s in sessions for data in inbox[s.party_id] for x in s.receive(Message.from_bytes(data))]
        raise RuntimeError("stage beyond the protocol")

    return setup


def _party_work(arg: tuple[Session, list[bytes]]) -> None:
    session, wire = arg
    if not wire:
        session.start()
    for data in wire:
        session.receive(Message.from_bytes(data))


def _per_party(name: str, make: Callable[[bytes], list[Session]], stages: list[str], runs: int) -> list[Case]:
    return [
        Case(f"{name} party 1 {label}", _party_work, setup=_prepare(make, k), references=(REF_NACL,), runs=runs)
        for k, label in enumerate(stages)
    ]


def _round_trip_floor() -> Callable[[], None]:
    """The libsodium calls of one 2-of-2 round trip (``protocols.frost.round_trip``), on valid
    inputs: on each side 2 commitments and the own term (fixed-base), the peer's E decoded and
    multiplied by ρ (scalarmult_noclamp), 2 additions for R and 1 signature verification
    (crypto_sign_open); the responder's decoding of D_I (is_valid_point) besides. The initiator
    checks D_R's subgroup only when the aggregate fails, which the floor leaves out as the
    protocol's success path does."""
    from nacl._sodium import ffi, lib

    shares = frost.dkg(2, 2)
    signature = frost.sign(shares, MESSAGE)
    signed = signature + MESSAGE
    public_key = shares[0].public_key
    scalar = ed25519.random_scalar().to_bytes(32, "little")
    point = ed25519.base_mul(ed25519.random_scalar()).to_bytes()
    other = ed25519.base_mul(ed25519.random_scalar()).to_bytes()

    def floor() -> None:
        out = ffi.new("unsigned char[32]")
        opened = ffi.new("unsigned char[]", len(signed))
        opened_length = ffi.new("unsigned long long *")
        for responder in (False, True):
            lib.crypto_scalarmult_ed25519_base_noclamp(out, scalar)  # D
            lib.crypto_scalarmult_ed25519_base_noclamp(out, scalar)  # E
            if responder:
                lib.crypto_core_ed25519_is_valid_point(point)  # the peer's D, before z_R leaves
            lib.crypto_scalarmult_ed25519_noclamp(out, scalar, point)  # the peer's E, times ρ
            lib.crypto_scalarmult_ed25519_base_noclamp(out, scalar)  # own term (d + ρe)·B
            lib.crypto_core_ed25519_add(out, point, other)  # R = own term + D
            lib.crypto_core_ed25519_add(out, point, other)  #     + ρ·E
            if lib.crypto_sign_open(opened, opened_length, signed, len(signed), public_key) != 0:
                raise RuntimeError("the reference signature does not verify")

    return floor


def _round_trip_wire() -> Callable[[], None]:
    """The three messages of one round trip built, encoded and strictly decoded, alone."""
    hex32 = ed25519.base_mul(ed25519.random_scalar()).to_bytes().hex()
    payloads = [
        (1, {"message_hash": SUITE.H4(MESSAGE).hex(), "hiding": hex32, "binding": hex32}),
        (2, {"hiding": hex32, "binding": hex32, "sig_share": hex32}),
        (3, {"signature": (hex32 + hex32)}),
    ]

    def wire() -> None:
        session_id = secrets.token_bytes(32)
        for round_no, payload in payloads:
            sender = 1 if round_no != 2 else 2
            Message.from_bytes(Message("frost/round-trip-sign", session_id, round_no, sender, 3 - sender, payload).to_bytes())

    return wire


def cases(quick: bool) -> list[Case]:
    out: list[Case] = [
        Case("frost sign 2-of-2 one round trip: libsodium calls alone", _round_trip_floor(),
             references=(REF_NACL,), runs=300),
        Case("frost sign 2-of-2 one round trip: its 3 messages on the wire alone", _round_trip_wire(),
             references=(REF_NACL,), runs=300),
    ]
    for t, n in ((2, 2), (3, 5)):
        out.append(Case(f"frost dkg {t}-of-{n} end to end", lambda t=t, n=n: frost.dkg(t, n),
                        references=(REF_NACL,), runs=20))
        shares = frost.dkg(t, n)[:t]
        signers = [s.identifier for s in shares]
        out.append(Case(f"frost sign {t}-of-{n} end to end", lambda s=shares: frost.sign(s, MESSAGE),
                        references=(REF_NACL,), runs=200))
        out += _per_party(
            f"frost sign {t}-of-{n}",
            lambda sid, s=shares, ids=signers: [SignSession(sid, k, ids, MESSAGE) for k in s],
            ["round 1 (commit)", "round 2 (sign)", "output (aggregate+verify)"], runs=200,
        )
        out += _per_party(
            f"frost dkg {t}-of-{n}",
            lambda sid, t=t, n=n: [DKGSession(sid, i, range(1, n + 1), t) for i in range(1, n + 1)],
            ["round 1 (commit+proof)", "round 2 (verify proofs, deal)", "round 3 (verify shares)", "output"],
            runs=20,
        )
    return out


class _TimedSodium:
    """libsodium's handle with each call's CPU time recorded (``profile_round_trip``)."""

    def __init__(self, real: Any, samples: dict[str, list[float]]) -> None:
        self._real, self._samples = real, samples

    def __getattr__(self, name: str) -> Any:
        function = getattr(self._real, name)

        def call(*args: Any) -> Any:
            start = time.process_time()
            value = function(*args)
            self._samples.setdefault(name, []).append(time.process_time() - start)
            return value

        return call


def _party_steps(shares: list[Any]) -> list[float]:
    """One round trip's four steps (start, the responder's round 1, the initiator's round 2, the
    responder's round 3), each with its incoming message's decoding and its reply's encoding."""
    from protocols.frost.round_trip import InitiatorSession, ResponderSession

    session_id = secrets.token_bytes(32)
    initiator = InitiatorSession(session_id, shares[0], shares[1].identifier, MESSAGE)
    responder = ResponderSession(session_id, shares[1], shares[0].identifier, MESSAGE)
    responder.start()
    times, wire = [], b""
    for step in (lambda: initiator.start(), lambda: responder.receive(Message.from_bytes(wire)),
                 lambda: initiator.receive(Message.from_bytes(wire)), lambda: responder.receive(Message.from_bytes(wire))):
        start = time.process_time()
        out = step()
        wire = out[0].to_bytes() if out else b""
        times.append(time.process_time() - start)
    return times


def profile_round_trip(passes: int = 5, runs: int = 400) -> dict[str, float]:
    """Median µs (CPU time) of PyNaCl sign, the round trip, its four steps and each libsodium call
    made inside it, over ``passes`` interleaved passes of ``runs`` calls."""
    import nacl.signing

    from benchmarks.presign_cases import frost_round_trip

    key = nacl.signing.SigningKey.generate()
    shares = frost.dkg(2, 2)
    calls: dict[str, list[float]] = {}
    modules = [importlib.import_module(m) for m in ("curves.ed25519", "protocols.frost.ciphersuite")]
    handles = [(modules[0], "_lib"), (modules[1], "lib")]
    timed: dict[str, list[float]] = {"pynacl sign": [], "round trip": []}
    steps: list[list[float]] = []
    for _ in range(passes):
        for name, function in (("pynacl sign", lambda: key.sign(MESSAGE)), ("round trip", frost_round_trip)):
            for _ in range(runs):
                start = time.process_time()
                function()
                timed[name].append(time.process_time() - start)
        steps += [_party_steps(shares) for _ in range(runs)]
        originals = [getattr(module, attr) for module, attr in handles]
        for (module, attr), original in zip(handles, originals):
            setattr(module, attr, _TimedSodium(original, calls))
        try:
            for _ in range(runs):
                frost_round_trip()
        finally:
            for (module, attr), original in zip(handles, originals):
                setattr(module, attr, original)
    out = {name: statistics.median(values) * 1e6 for name, values in timed.items() if values}
    for k, name in enumerate(("initiator start", "responder round 1", "initiator round 2", "responder round 3")):
        out[name] = statistics.median(s[k] for s in steps) * 1e6
    for name, values in calls.items():
        out[f"{name} (x{len(values) // (passes * runs)})"] = statistics.median(values) * 1e6
    return out


def _print_profile(passes: int) -> None:
    figures = profile_round_trip(passes)
    reference = figures["pynacl sign"]
    calls = sum(v * int(k.rsplit("(x", 1)[1][:-1]) for k, v in figures.items() if k.startswith("crypto_"))
    figures["libsodium calls of one round trip (sum)"] = calls
    figures["the rest: Python (round trip - calls)"] = figures["round trip"] - calls
    print("| item | µs | × PyNaCl sign |\n|---|---:|---:|")
    for name, value in figures.items():
        print(f"| {name} | {value:.1f} | {value / reference:.2f} |")


if __name__ == "__main__":
    _print_profile(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
