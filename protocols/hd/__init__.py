"""HD derivation for threshold keys (docs/hd.md): private accounts, exact BIP32 below them.

- ``paths``: parsing ``m/44'/60'/0'/0/5`` into the hardened account path and the public part
- ``keys``: the joint derivation key k = k1 + k2 per curve (``DerivationKeygen``)
- ``account``: hashing an account path to a point, the account tweak δ and chain code c
- ``vrf``: the two-party VRF with DLEQ proofs giving (δ, c) (``AccountVRF``)
- ``bip32``: ``CKDpub`` and the ``xpub`` serialisation on secp256k1
- ``ed25519_derivation``: the public derivation on ed25519
"""

from protocols.hd.account import AccountKey, account_point, account_tweak
from protocols.hd.bip32 import InvalidChild
from protocols.hd.keys import DerivationKeygen, DerivationKeyShare, derivation_keygen
from protocols.hd.paths import HARDENED, MAX_DEPTH, HDPath, InvalidPath, parse_path
from protocols.hd.vrf import MAX_PATHS, AccountTweak, AccountVRF

__all__ = [
    "AccountKey",
    "AccountTweak",
    "AccountVRF",
    "DerivationKeyShare",
    "DerivationKeygen",
    "HARDENED",
    "HDPath",
    "InvalidChild",
    "InvalidPath",
    "MAX_DEPTH",
    "MAX_PATHS",
    "account_point",
    "account_tweak",
    "derivation_keygen",
    "parse_path",
]
