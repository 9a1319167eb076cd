"""The protocols' randomness (``curves.randomness``): ``secrets`` by default, a keyed PRF stream
inside ``derived(key, context)``, ``secrets`` again inside ``fresh()``.

Protocol code draws only through these functions (or ``protocols.bigint``'s ``random_*`` and
``Group.random_scalar``, which use them), so a custodian that runs a step inside ``derived``
makes every secret of that step a function of its nonce key and the step's transcript
(docs/threat-model.md, "Rollback").
"""

from curves.randomness import KEY_LENGTH, DerivationKey, derived, fresh, is_derived, randbelow, randbits, token_bytes

__all__ = ["KEY_LENGTH", "DerivationKey", "derived", "fresh", "is_derived", "randbelow", "randbits", "token_bytes"]
