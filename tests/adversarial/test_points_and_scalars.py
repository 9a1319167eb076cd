"""Bad points and scalars in every point or scalar field of every round, and unambiguous hashing.

Every hex field of a message (inside a wallet message too) that has the length of a point or a
scalar is replaced in turn by: the identity, an off-curve point, small-order ed25519 points (all
eight torsion points, canonical and not), non-canonical encodings (x ≥ p, y ≥ p, uncompressed,
hybrid), and the scalars 0, the group order and 2^256 − 1. The receiver must refuse it
(``InvalidMessage`` with its state unchanged, or an abort naming the sender); whatever it
accepts must still lead to correct outputs; afterwards it still finishes with the honest message.

The transcript-ambiguity tests check by construction that every hash input of the protocols
(Fiat-Shamir transcripts, commitments, child session ids, FROST view hashes) is injective:
moving bytes from one field to the next, or splitting a field in two, changes the digest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curves import ed25519, secp256k1
from protocols import commitments
from protocols.compose import child_session_id
from protocols.frost.broadcast import view_hash
from protocols.rounds import Message
from protocols.transcript import Transcript
from tests.adversarial.test_fuzz import Victim, checkpoints_of, deliver, finish_after_rejections

SECP_P = 2**256 - 2**32 - 977
ED_P = 2**255 - 19


def _le(value: int) -> str:
    return value.to_bytes(32, "little").hex()


ED25519_BAD = {
    "identity": "01" + "00" * 31,
    "order 2": "ec" + "ff" * 30 + "7f",
    "order 4 (y = 0)": "00" * 32,
    "order 4 (y = 0, sign)": "00" * 31 + "80",
    "order 8 a": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "order 8 b": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "order 8 a (sign)": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "order 8 b (sign)": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "y = p + 1 (non-canonical identity)": _le(ED_P + 1),
    "y = p (non-canonical)": _le(ED_P),
    "off curve (y = 2)": _le(2),
    "torsion component": (ed25519.base_mul(5).to_bytes()).hex(),  # replaced below
    "scalar 0": "00" * 32,
    "scalar L": _le(ed25519.order),
    "scalar 2^256 - 1": "ff" * 32,
}
SECP256K1_BAD = {
    "identity": "00",
    "off curve (x = 0)": "02" + "00" * 32,
    "x = p (non-canonical)": "02" + SECP_P.to_bytes(32, "big").hex(),
    "x = p + 1 (non-canonical)": "03" + (SECP_P + 1).to_bytes(32, "big").hex(),
    "uncompressed": "04" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
                    + "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8",
    "hybrid": "06" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
              + "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8",
    "scalar 0": "00" * 32,
    "scalar n": secp256k1.order.to_bytes(32, "big").hex(),
    "scalar 2^256 - 1": "ff" * 32,
}


def _torsion_component() -> str:
    """5·B plus the order-2 point (0, -1): on the curve, not in the prime-order subgroup."""
    # (x, y) + (0, -1) = (-x, -y); the encoding of -(5·B) is that of 5·B with the sign bit
    # flipped, and negating y gives y' = p - y.
    encoded = bytearray(ed25519.base_mul(5).to_bytes())
    sign = encoded[31] & 0x80
    y = int.from_bytes(bytes(encoded[:31]) + bytes([encoded[31] & 0x7F]), "little")
    y = ED_P - y
    out = bytearray(y.to_bytes(32, "little"))
    out[31] |= sign ^ 0x80
    return out.hex()


ED25519_BAD["torsion component"] = _torsion_component()


def substitutions(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, bad value) for every hex leaf of a point's or a scalar's length."""
    if isinstance(obj, dict):
        for key in sorted(obj):
            yield from substitutions(obj[key], path + (key,))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from substitutions(item, path + (i,))
    elif isinstance(obj, str) and all(c in "0123456789abcdef" for c in obj):
        if len(obj) == 66 and obj[:2] in ("02", "03"):
            yield from ((path, bad) for bad in SECP256K1_BAD.values())
        elif len(obj) == 64:
            yield from ((path, bad) for bad in {**ED25519_BAD, **SECP256K1_BAD}.values() if len(bad) in (2, 64, 66))


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(obj) if isinstance(obj, dict) else list(obj)
    copy[path[0]] = _replace(obj[path[0]], path[1:], value)
    return copy


SCENARIO_NAMES = ["ecdsa2p/keygen", "ecdsa2p/sign", "ecdsa2p/reshare-backup", "frost/dkg", "frost/sign",
                  "frost/refresh", "frost/reshare", "wallet/sign-ethereum", "wallet/sign-solana"]


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_bad_points_and_scalars_in_every_field(name: str) -> None:
    for cp, _ in checkpoints_of(name):
        victim = Victim(cp)
        obj = json.loads(cp.message.to_bytes())
        outcomes = set()
        for path, bad in substitutions(obj["payload"], ("payload",)):
            if _replace(obj, path, bad) == obj:
                continue
            data = json.dumps(_replace(obj, path, bad), sort_keys=True, separators=(",", ":")).encode()
            outcomes.add(deliver(victim, data))
        # "accepted" happens for hash-length fields (a commitment, a view hash): ``deliver`` then
        # ran the protocol on and checked that only refusals naming the sender or correct outputs came.
        # "ShareReplaced": a sign hello naming another valid client share (what an old device sends)
        # is refused as such, the session unchanged (malformed ones are "invalid").
        assert outcomes <= {"invalid", "ProtocolAbort", "accepted", "unparsed", "ShareReplaced"}, (cp.label, outcomes)
        finish_after_rejections(victim)


def test_every_small_order_and_non_canonical_encoding_is_refused_by_the_decoder() -> None:
    from curves import InvalidEncoding

    for label, value in ED25519_BAD.items():
        if label.startswith("scalar"):
            continue
        with pytest.raises(InvalidEncoding):
            ed25519.decode_point(bytes.fromhex(value))
    for label, value in SECP256K1_BAD.items():
        if label.startswith("scalar"):
            continue
        with pytest.raises(InvalidEncoding):
            secp256k1.decode_point(bytes.fromhex(value))
    for group in (ed25519, secp256k1):
        for bad in (group.order, 2**256 - 1):
            order = "little" if group is ed25519 else "big"
            with pytest.raises(InvalidEncoding):
                group.decode_scalar(bad.to_bytes(32, order))
        with pytest.raises(InvalidEncoding):
            group.decode_scalar(bytes(32), nonzero=True)


# --- transcript ambiguity -------------------------------------------------------------------------------------
FIELDS = st.lists(st.binary(max_size=12), min_size=1, max_size=4)


def _shifted(fields: list[bytes]) -> Iterator[list[bytes]]:
    """The same bytes cut at other places: a byte moved to a neighbour, a field split or merged."""
    for i in range(len(fields) - 1):
        if fields[i]:
            yield fields[:i] + [fields[i][:-1], fields[i][-1:] + fields[i + 1]] + fields[i + 2:]
        yield fields[:i] + [fields[i] + fields[i + 1]] + fields[i + 2:]
    for i, f in enumerate(fields):
        if len(f) > 1:
            yield fields[:i] + [f[:1], f[1:]] + fields[i + 1:]


def _transcript_digest(fields: list[bytes]) -> bytes:
    t = Transcript("adversarial")
    for f in fields:
        t.append_bytes("x", f)
    return t.challenge_bytes("c", 32)


@settings(max_examples=60, deadline=None)
@given(fields=FIELDS)
def test_transcript_and_view_hash_inputs_are_injective(fields: list[bytes]) -> None:
    for other in _shifted(fields):
        assert other != fields
        assert _transcript_digest(other) != _transcript_digest(fields)
        assert view_hash("p", bytes(32), "l", dict(enumerate(other))) != view_hash("p", bytes(32), "l", dict(enumerate(fields)))


@settings(max_examples=60, deadline=None)
@given(value=st.binary(max_size=40), name=st.text(min_size=1, max_size=8), cut=st.integers(min_value=1, max_value=31))
def test_commitment_and_child_session_id_bind_each_field_separately(value: bytes, name: str, cut: int) -> None:
    sid = bytes(range(32))
    nonce = bytes(32)
    base = commitments._digest("p", sid, 1, nonce, value)
    # Moving bytes between the session id / nonce / value, or changing the party, changes it.
    assert commitments._digest("p", sid[:cut], 1, nonce, sid[cut:] + value) != base
    assert commitments._digest("p" + sid[:1].hex(), sid, 1, nonce, value) != base
    assert commitments._digest("p", sid, 2, nonce, value) != base
    assert commitments._digest("p", sid, 1, nonce, value + b"\x00") != base
    assert child_session_id(sid, name) != child_session_id(sid[:-1], sid[-1:].decode("latin-1") + name)
    assert child_session_id(sid, name) != child_session_id(sid, name + "\x00")


def test_messages_differing_only_in_where_bytes_sit_encode_differently() -> None:
    """The wire encoding itself is canonical JSON with typed fields: no two messages share bytes."""
    a = Message("p", bytes(32), 1, 1, 2, {"ab": "cd"})
    b = Message("p", bytes(32), 1, 1, 2, {"a": "bcd"})
    c = Message("p", bytes(32), 11, 1, 2, {"ab": "cd"})
    assert len({m.to_bytes() for m in (a, b, c)}) == 3
    for m in (a, b, c):
        assert Message.from_bytes(m.to_bytes()) == m
