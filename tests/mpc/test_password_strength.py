"""What a PASSWORD backup accepts: zxcvbn's estimate against ``MIN_PASSWORD_BITS``, and the
Argon2id floor of new backups (docs/backup.md, "Password strength" and "Cost of a guess").

The weak table holds what an offline guesser (the custodian with its store key, or a thief of
the database and the key) tries first, kind by kind; the strong table holds passphrases of
random words (diceware style) and random strings. Each weak one is refused before anything
runs, each strong one accepted, at the same bar.
"""

from __future__ import annotations

import nacl.pwhash.argon2id as argon2id
import pytest

from mpc.backup.methods import (
    MIN_BACKUP_MEMLIMIT,
    MIN_BACKUP_OPSLIMIT,
    MIN_PASSWORD_BITS,
    BackupContext,
    PasswordMethod,
    encrypt_backup,
    password_strength_bits,
)
from mpc.errors import BackupPasswordKdfTooWeak, BackupPasswordTooWeak, InputInvalid
from tests.mpc.conftest import Wallet

WEAK = {
    "common password with l33t and a year": ["P@ssw0rd2024!", "Password123!", "P4ssw0rd!P4ssw0rd!", "Passw0rd!Passw0rd!"],
    "season or greeting with a year": ["Summer2024!", "Autumn2023?", "Winter2025$", "Welcome123!"],
    "repeated word": ["passwordpassword", "dragon dragon dragon dragon", "letmeinletmein", "hunter2hunter2",
                      "iloveyouiloveyou", "password password password password password"],
    "keyboard walk": ["qwertyuiopasdfghjkl", "1qaz2wsx3edc4rfv", "zaq12wsxcde3", "asdfasdfasdf", "zxcvbnm,./",
                      "qazwsxedcrfvtgbyhn", "Qwerty!2345"],
    "name or car with a year": ["Mustang1967!", "Jennifer1985", "Michael1990!", "Dallas1999!!", "Liverpool#1892",
                                "January151990"],
    "famous l33t example": ["Tr0ub4dor&3"],
    "common phrase": ["the quick brown fox", "I love you so much", "to be or not to be", "may the force be with you",
                      "bitcoin to the moon", "Hello World 123", "correct horse battery staple",
                      "Correct Horse Battery Staple"],
    "e-mail address": ["john.smith@gmail.com", "Sarah.Connor@yahoo.com", "mary.jones1985@hotmail.com"],
    "two or four common words": ["paper quote", "monkey banana", "batman superman", "violet tractor moss lantern"],
    "the product and its chains": ["Portal2024!", "portal-mpc wallet", "ethereum solana", "Solana2024!",
                                   "MyBitcoinWallet1!"],
    "PIN, date or sequence": ["123456", "000000", "1234", "19850102", "01/02/1985", "12345678901234567890",
                              "0123456789012345", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJ", "aaaaaaaaaaaaaaaaaaaaaa"],
}
WEAK_CASES = [(kind, password) for kind, passwords in WEAK.items() for password in passwords]

STRONG = [
    # 5 or 6 words picked at random from a diceware list
    "crumpet maverick unsworn tadpole glitter",
    "crumpet maverick unsworn tadpole glitter reapply",
    "sprang-ladle-overtly-mutual-cosmos",
    "gravy fidelity wobbly pastel orchid",
    "unsaid-crane-pelican-bluish-atrium-stole",
    "eggnog_snowsuit_upkeep_reacquire_clumsy",
    "spongy.harbor.tamper.kilowatt.unlit.zigzag",
    "fjord lugged nappy ritzy voltage whiff",
    "bramble quench zodiac fiddle mossy hangar",
    "mango-ivory-sprinkle-dwindle-oblong",
    # 16 or more random characters
    "Xk9#mQ2vLp7!zR4w",
    "q7vKx2mPz9LwB4tN",
    "tZ8!pW3@nR6#yL1$qK",
    "Vp2xQ9mZ4kLw8Rt6Yh3N",
    "ycgt5h2mqz8rwj4xvkp9",
    "9f4e1c7a2b8d3e6f0a5c",
    "gC7$wB2^kM9&xT4*",
]


def test_the_tables_are_as_large_as_promised():
    assert len(WEAK_CASES) >= 40 and len(STRONG) >= 15
    assert len(set(password for _, password in WEAK_CASES)) == len(WEAK_CASES)


@pytest.mark.parametrize("kind, weak", WEAK_CASES)
def test_every_weak_password_is_refused_with_the_reason(kind, weak):
    assert password_strength_bits(weak) < MIN_PASSWORD_BITS, kind
    with pytest.raises(BackupPasswordTooWeak) as info:
        PasswordMethod(weak).check_for_backup()
    message = info.value.message
    assert weak not in message and "random" in message and f"{MIN_PASSWORD_BITS:.0f}" in message
    PasswordMethod(weak, allow_weak=True).check_for_backup()  # the caller's explicit choice stays


@pytest.mark.parametrize("strong", STRONG)
def test_every_strong_passphrase_is_accepted(strong):
    assert password_strength_bits(strong) >= MIN_PASSWORD_BITS
    PasswordMethod(strong).check_for_backup()
    PasswordMethod(strong.encode()).check_for_backup()  # the same password as UTF-8 bytes


def test_the_client_id_counts_as_a_word_the_guesser_knows():
    client_id = "f3a9c2e17b5d4086a1e2c3b4d5e6f708"
    assert password_strength_bits(client_id) >= MIN_PASSWORD_BITS
    with pytest.raises(BackupPasswordTooWeak):
        PasswordMethod(client_id).check_for_backup(user_inputs=(client_id,))


def test_a_wallet_backup_with_a_weak_password_is_refused_before_anything_runs(generated: Wallet):
    with pytest.raises(BackupPasswordTooWeak):
        generated.client.backup(PasswordMethod("Summer2024!"))
    assert generated.custodian.get_client(generated.client_id)["backup_share_status"] == "NOT_CREATED"


# --- the Argon2id floor of new backups --------------------------------------------------------
CHEAP_LIMITS = [
    {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN},
    {"opslimit": argon2id.OPSLIMIT_INTERACTIVE, "memlimit": argon2id.MEMLIMIT_INTERACTIVE},
    {"opslimit": argon2id.OPSLIMIT_MODERATE - 1, "memlimit": argon2id.MEMLIMIT_MODERATE},
    {"opslimit": argon2id.OPSLIMIT_SENSITIVE, "memlimit": argon2id.MEMLIMIT_MODERATE // 2},
]
STRONG_PASSPHRASE = STRONG[0]


def test_the_floor_is_the_default():
    assert (MIN_BACKUP_OPSLIMIT, MIN_BACKUP_MEMLIMIT) == (argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE)
    method = PasswordMethod(STRONG_PASSPHRASE)
    assert (method.opslimit, method.memlimit) == (MIN_BACKUP_OPSLIMIT, MIN_BACKUP_MEMLIMIT)


@pytest.mark.parametrize("limits", CHEAP_LIMITS)
def test_a_new_backup_below_the_default_limits_is_refused(limits):
    method = PasswordMethod(STRONG_PASSPHRASE, **limits)
    with pytest.raises(BackupPasswordKdfTooWeak) as info:
        method.check_for_backup()
    assert isinstance(info.value, InputInvalid) and info.value.code == "BACKUP_PASSWORD_KDF_TOO_WEAK"
    assert STRONG_PASSPHRASE not in info.value.message
    with pytest.raises(BackupPasswordKdfTooWeak):  # also when the caller skips the check
        method.hardening_request()
    with pytest.raises(BackupPasswordKdfTooWeak):  # allow_weak is about the password, not the cost
        PasswordMethod(STRONG_PASSPHRASE, allow_weak=True, **limits).check_for_backup()


def test_a_wallet_backup_below_the_default_limits_is_refused_before_anything_runs(generated: Wallet):
    with pytest.raises(BackupPasswordKdfTooWeak):
        generated.client.backup(PasswordMethod(STRONG_PASSPHRASE, **CHEAP_LIMITS[0]))
    assert generated.custodian.get_client(generated.client_id)["backup_share_status"] == "NOT_CREATED"


def test_an_old_record_at_cheap_limits_still_opens():
    context = BackupContext("client-1", "secp256k1")
    key, _ = encrypt_backup(b"share", context)
    old = PasswordMethod(STRONG_PASSPHRASE, harden=False, **CHEAP_LIMITS[0])  # as an engine before 0.4
    record = old.store_key(context, key)
    assert PasswordMethod(STRONG_PASSPHRASE).load_key(context, record) == key
