"""Broadcast consistency over point-to-point channels (echo of a view hash).

The sessions run over authenticated point-to-point channels; a "broadcast" is the same message
sent to every peer, and a malicious sender could send different versions to different peers
(equivocation). If honest parties then continued with different views they would compute
different binding factors or keys, and a later check would blame an *honest* party.

So every protocol here has each party send, in the next round, a hash of its whole view of
the previous broadcast round (``view_hash``) to every peer, and each receiver compares it with
its own before using anything else from that message. Because every pair of parties exchanges
such a hash, all honest parties that continue past that check hold identical views.

Who is to blame for a mismatch (``inconsistency_culprit``): the receiver knows its own
broadcast, so if every broadcast in the view came from the receiver or the sender of the hash,
the sender lied (about its own message or about what it received) and is named. Otherwise a
third party may have equivocated, and without signed messages the culprit cannot be told
apart: the abort names nobody (``culprit=None``). With two parties, the wallet's case, the
culprit is always known.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

__all__ = ["VIEW_HASH_LENGTH", "view_hash", "inconsistency_culprit"]

VIEW_HASH_LENGTH = 32


def view_hash(protocol: str, session_id: bytes, label: str, view: Mapping[int, bytes]) -> bytes:
    """SHA-256 over (protocol, session id, label, each (party, encoded broadcast) by party id)."""
    items = [b"portal-mpc/frost/view/v1", protocol.encode(), session_id, label.encode()]
    for party in sorted(view):
        items += [party.to_bytes(4, "big"), view[party]]
    return hashlib.sha256(b"".join(len(item).to_bytes(8, "big") + item for item in items)).digest()


def inconsistency_culprit(sources: Iterable[int], receiver: int, sender: int) -> int | None:
    """The sender if every broadcast in the view came from the receiver or the sender, else None."""
    return sender if set(sources) <= {receiver, sender} else None
