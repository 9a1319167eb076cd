"""Client-side backup encryption and the PASSWORD / CLOUD / PASSKEY key-keeping methods."""

from __future__ import annotations

import stat

import nacl.pwhash.argon2id as argon2id
import pytest
from protocols import oprf
from protocols.errors import ProofError, UsageError
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc.backup.methods import (
    MIN_PASSWORD_BITS,
    password_strength_bits,
    KEY_LENGTH,
    BackupContext,
    CloudMethod,
    LocalFolderCloudStorage,
    MemoryCloudStorage,
    MemoryPasskeyWrapper,
    PasskeyMethod,
    PasswordMethod,
    decrypt_backup,
    encrypt_backup,
)
from mpc.errors import (
    BackupPasswordTooWeak,
    BackupDecryptionFailed,
    BackupKeyNotFound,
    BackupPasswordInvalid,
    InputInvalid,
)
from tests.mpc.conftest import Wallet

SHARE = b"client backup share: secret bytes"
CTX = BackupContext("client-1", "secp256k1")
FAST = {"opslimit": argon2id.OPSLIMIT_INTERACTIVE, "memlimit": argon2id.MEMLIMIT_INTERACTIVE}
pytestmark = pytest.mark.usefixtures("cheap_argon2id")  # new backups at FAST limits (tests/conftest.py)
# The unit tests of the wrapping itself use version-1 records; the hardened (version-2) path is
# tested below with a local VOPRF key standing in for the custodian, and end to end in
# test_backup_methods.py.
V1 = {**FAST, "harden": False}


# --- encrypt / decrypt -----------------------------------------------------------------------------
def test_round_trip_with_fresh_keys():
    key1, box1 = encrypt_backup(SHARE, CTX)
    key2, box2 = encrypt_backup(SHARE, CTX)
    assert len(key1) == KEY_LENGTH and key1 != key2 and box1 != box2
    assert SHARE not in box1
    assert decrypt_backup(key1, box1, CTX) == SHARE
    assert decrypt_backup(key2, box2, CTX) == SHARE


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=2048))
def test_any_plaintext_round_trips(plaintext):
    key, box = encrypt_backup(plaintext, CTX)
    assert decrypt_backup(key, box, CTX) == plaintext


def test_wrong_key_fails():
    _, box = encrypt_backup(SHARE, CTX)
    other_key, _ = encrypt_backup(SHARE, CTX)
    with pytest.raises(BackupDecryptionFailed):
        decrypt_backup(other_key, box, CTX)


def test_every_tampered_byte_fails():
    key, box = encrypt_backup(SHARE, CTX)
    for i in range(len(box)):
        tampered = bytearray(box)
        tampered[i] ^= 0x80
        with pytest.raises(BackupDecryptionFailed):
            decrypt_backup(key, bytes(tampered), CTX)


@pytest.mark.parametrize("cut", [0, 1, 5, 29, 45, -1])
def test_truncated_box_fails(cut):
    key, box = encrypt_backup(SHARE, CTX)
    with pytest.raises(BackupDecryptionFailed):
        decrypt_backup(key, box[:cut], CTX)


@pytest.mark.parametrize(
    "other", [BackupContext("client-2", "secp256k1"), BackupContext("client-1", "ed25519")]
)
def test_box_is_bound_to_client_and_curve(other):
    key, box = encrypt_backup(SHARE, CTX)
    with pytest.raises(BackupDecryptionFailed):
        decrypt_backup(key, box, other)


def test_wrong_length_key_fails_typed():
    _, box = encrypt_backup(SHARE, CTX)
    with pytest.raises(BackupDecryptionFailed):
        decrypt_backup(b"\0" * 31, box, CTX)


@pytest.mark.parametrize(
    ("client_id", "curve"), [("", "secp256k1"), ("c", "p256"), (None, "ed25519"), ("c", None)]
)
def test_context_is_validated(client_id, curve):
    with pytest.raises(InputInvalid):
        BackupContext(client_id, curve)


def test_bad_argument_types_are_input_errors():
    with pytest.raises(InputInvalid):
        encrypt_backup("text", CTX)  # type: ignore[arg-type]
    with pytest.raises(InputInvalid):
        encrypt_backup(SHARE, ("client-1", "secp256k1"))  # type: ignore[arg-type]
    key, box = encrypt_backup(SHARE, CTX)
    with pytest.raises(InputInvalid):
        decrypt_backup(key, box.hex(), CTX)  # type: ignore[arg-type]


def test_context_encoding_is_unambiguous():
    assert BackupContext("a", "ed25519").to_bytes() != BackupContext("a" + "\0", "ed25519").to_bytes()


# --- methods -----------------------------------------------------------------------------------
@pytest.fixture(params=["password", "cloud-folder", "cloud-memory", "passkey"])
def method(request, tmp_path):
    if request.param == "password":
        return PasswordMethod("correct horse battery staple", **V1)
    if request.param == "cloud-folder":
        return CloudMethod(LocalFolderCloudStorage(tmp_path / "cloud"))
    if request.param == "cloud-memory":
        return CloudMethod(MemoryCloudStorage())
    return PasskeyMethod(MemoryPasskeyWrapper())


def test_method_round_trip_recovers_the_share(method):
    key, box = encrypt_backup(SHARE, CTX)
    record = method.store_key(CTX, key)
    assert key not in record
    recovered = method.load_key(CTX, record)
    assert decrypt_backup(recovered, box, CTX) == SHARE


def test_method_names():
    assert PasswordMethod("pw", **V1).name == "PASSWORD"
    assert CloudMethod(MemoryCloudStorage()).name == "CLOUD"
    assert PasskeyMethod(MemoryPasskeyWrapper()).name == "PASSKEY"


def test_both_curves_are_kept_apart(method):
    ed_ctx = BackupContext("client-1", "ed25519")
    secp_key, secp_box = encrypt_backup(b"secp share", CTX)
    ed_key, ed_box = encrypt_backup(b"ed share", ed_ctx)
    secp_record = method.store_key(CTX, secp_key)
    ed_record = method.store_key(ed_ctx, ed_key)
    assert decrypt_backup(method.load_key(CTX, secp_record), secp_box, CTX) == b"secp share"
    assert decrypt_backup(method.load_key(ed_ctx, ed_record), ed_box, ed_ctx) == b"ed share"


def test_record_of_another_method_is_refused(tmp_path):
    key, _ = encrypt_backup(SHARE, CTX)
    password_record = PasswordMethod("pw", **V1).store_key(CTX, key)
    with pytest.raises(InputInvalid, match="PASSWORD"):
        CloudMethod(MemoryCloudStorage()).load_key(CTX, password_record)
    with pytest.raises(InputInvalid):
        PasskeyMethod(MemoryPasskeyWrapper()).load_key(CTX, password_record)


@pytest.mark.parametrize("record", [b"", b"MPBK", b"junk-record", b"MPBK\x01\x09PASS"])
def test_malformed_records_fail_typed(method, record):
    with pytest.raises(BackupDecryptionFailed):
        method.load_key(CTX, record)


def test_store_rejects_a_key_of_wrong_length(method):
    with pytest.raises(InputInvalid):
        method.store_key(CTX, b"short")


# PASSWORD
def test_wrong_password_is_a_typed_error():
    key, _ = encrypt_backup(SHARE, CTX)
    record = PasswordMethod("1234", **V1).store_key(CTX, key)
    with pytest.raises(BackupPasswordInvalid) as info:
        PasswordMethod("1235", **V1).load_key(CTX, record)
    assert isinstance(info.value, BackupDecryptionFailed)
    assert "1234" not in str(info.value) and "1235" not in str(info.value)


def test_password_parameters_travel_with_the_record():
    key, _ = encrypt_backup(SHARE, CTX)
    record = PasswordMethod("pw", **V1).store_key(CTX, key)
    # A method built with other default limits still opens it: the record says which were used.
    assert PasswordMethod("pw", opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN).load_key(
        CTX, record
    ) == key


def test_password_is_normalised():
    key, _ = encrypt_backup(SHARE, CTX)
    record = PasswordMethod("caf\u00e9", **V1).store_key(CTX, key)  # precomposed é
    assert PasswordMethod("cafe\u0301", **V1).load_key(CTX, record) == key  # e + combining accent


def test_password_record_is_bound_to_the_context():
    key, _ = encrypt_backup(SHARE, CTX)
    record = PasswordMethod("pw", **V1).store_key(CTX, key)
    with pytest.raises(BackupDecryptionFailed):
        PasswordMethod("pw", **V1).load_key(BackupContext("client-2", "secp256k1"), record)


def test_forged_huge_argon2_limits_are_refused_before_hashing():
    key, _ = encrypt_backup(SHARE, CTX)
    record = bytearray(PasswordMethod("pw", **V1).store_key(CTX, key))
    body = len(b"MPBK\x01") + 1 + len("PASSWORD")
    record[body + 8 : body + 16] = (1 << 40).to_bytes(8, "big")  # memlimit: 1 TiB
    with pytest.raises(BackupDecryptionFailed, match="Argon2id"):
        PasswordMethod("pw", **V1).load_key(CTX, bytes(record))


@pytest.mark.parametrize("password", ["", b"", None])
def test_empty_password_is_refused(password):
    with pytest.raises(InputInvalid):
        PasswordMethod(password, **V1)  # type: ignore[arg-type]


def test_out_of_range_limits_are_refused():
    with pytest.raises(InputInvalid):
        PasswordMethod("pw", opslimit=0, memlimit=argon2id.MEMLIMIT_MIN)


def test_password_never_in_repr():
    method = PasswordMethod("hunter2-secret", **V1)
    assert "hunter2" not in repr(method) and "hunter2" not in str(method)


# CLOUD
def test_missing_cloud_key_is_a_typed_error(tmp_path):
    key, _ = encrypt_backup(SHARE, CTX)
    method = CloudMethod(LocalFolderCloudStorage(tmp_path / "cloud"))
    record = method.store_key(CTX, key)
    for path in (tmp_path / "cloud").iterdir():
        path.unlink()
    with pytest.raises(BackupKeyNotFound) as info:
        method.load_key(CTX, record)
    assert info.value.status == 404


def test_missing_cloud_key_in_memory_storage():
    key, _ = encrypt_backup(SHARE, CTX)
    storage = MemoryCloudStorage()
    record = CloudMethod(storage).store_key(CTX, key)
    storage.keychain.wipe()
    with pytest.raises(BackupKeyNotFound):
        CloudMethod(storage).load_key(CTX, record)


def test_damaged_cloud_key_is_a_typed_error(tmp_path):
    key, _ = encrypt_backup(SHARE, CTX)
    method = CloudMethod(LocalFolderCloudStorage(tmp_path / "cloud"))
    record = method.store_key(CTX, key)
    (path,) = (tmp_path / "cloud").iterdir()
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(BackupDecryptionFailed):
        method.load_key(CTX, record)


def test_cloud_folder_files_are_private(tmp_path):
    key, _ = encrypt_backup(SHARE, CTX)
    record = CloudMethod(LocalFolderCloudStorage(tmp_path / "cloud")).store_key(CTX, key)
    (path,) = (tmp_path / "cloud").iterdir()
    assert path.name == f"client-1.secp256k1.backup-key.{record[-8:].hex()}.entry"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_cloud_refuses_client_ids_that_are_not_safe_names():
    key, _ = encrypt_backup(SHARE, CTX)
    with pytest.raises(InputInvalid):
        CloudMethod(MemoryCloudStorage()).store_key(BackupContext("../x", "ed25519"), key)


def test_cloud_key_of_wrong_length_is_refused():
    key, _ = encrypt_backup(SHARE, CTX)
    storage = MemoryCloudStorage()
    record = CloudMethod(storage).store_key(CTX, key)
    storage.keychain.put(CloudMethod.object_name(CTX, record[-8:]), b"short")
    with pytest.raises(BackupDecryptionFailed):
        CloudMethod(storage).load_key(CTX, record)


def test_every_cloud_backup_keeps_its_own_key_version():
    """A second backup never overwrites the first one's key (an interrupted backup loses nothing)."""
    storage = MemoryCloudStorage()
    method = CloudMethod(storage)
    (key1, box1), (key2, box2) = encrypt_backup(SHARE, CTX), encrypt_backup(SHARE, CTX)
    record1, record2 = method.store_key(CTX, key1), method.store_key(CTX, key2)
    assert record1 != record2
    assert decrypt_backup(method.load_key(CTX, record1), box1, CTX) == SHARE
    assert decrypt_backup(method.load_key(CTX, record2), box2, CTX) == SHARE


def test_an_unversioned_cloud_record_reads_the_legacy_name():
    storage = MemoryCloudStorage()
    key, box = encrypt_backup(SHARE, CTX)
    storage.save(CloudMethod.object_name(CTX), key)
    legacy_record = CloudMethod(storage).store_key(CTX, key)[:-CloudMethod.VERSION_BYTES]
    assert decrypt_backup(CloudMethod(storage).load_key(CTX, legacy_record), box, CTX) == SHARE
    with pytest.raises(BackupDecryptionFailed):
        CloudMethod(storage).load_key(CTX, legacy_record + b"\x01")


# PASSKEY
def test_another_device_secret_cannot_unwrap():
    key, _ = encrypt_backup(SHARE, CTX)
    record = PasskeyMethod(MemoryPasskeyWrapper()).store_key(CTX, key)
    with pytest.raises(BackupDecryptionFailed):
        PasskeyMethod(MemoryPasskeyWrapper()).load_key(CTX, record)


def test_same_device_secret_unwraps_on_a_new_method_object():
    secret = bytes(range(32))
    key, _ = encrypt_backup(SHARE, CTX)
    record = PasskeyMethod(MemoryPasskeyWrapper(secret)).store_key(CTX, key)
    assert PasskeyMethod(MemoryPasskeyWrapper(secret)).load_key(CTX, record) == key


def test_tampered_passkey_record_fails():
    key, _ = encrypt_backup(SHARE, CTX)
    wrapper = MemoryPasskeyWrapper()
    record = bytearray(PasskeyMethod(wrapper).store_key(CTX, key))
    record[-1] ^= 1
    with pytest.raises(BackupDecryptionFailed):
        PasskeyMethod(wrapper).load_key(CTX, bytes(record))


def test_device_secret_is_validated_and_redacted():
    with pytest.raises(InputInvalid):
        MemoryPasskeyWrapper(b"short")
    secret = bytes(range(32))
    wrapper = MemoryPasskeyWrapper(secret)
    assert secret.hex() not in repr(wrapper) and secret.hex() not in repr(PasskeyMethod(wrapper))


def test_cloud_storage_repr_shows_no_key():
    storage = MemoryCloudStorage()
    key, _ = encrypt_backup(SHARE, CTX)
    CloudMethod(storage).store_key(CTX, key)
    assert key.hex() not in repr(storage) and repr(key) not in repr(CloudMethod(storage))


# Password strength (a guard rail before a PASSWORD backup starts)
@pytest.mark.parametrize("weak", ["1234", "123456", "000000", "hunter22", "password1", "aaaaaaaaaaaaaaaaaaaaaaaa",
                                  "abcdefghijklmnopqrstuvw", "Correct Horse Battery Staple", "pw",
                                  "correct horse", "Tr0ub4dor&3", "zq8#Lm2!vR9x"])
def test_weak_passwords_are_refused_for_a_backup_unless_allowed(weak):
    assert password_strength_bits(weak) < MIN_PASSWORD_BITS
    with pytest.raises(BackupPasswordTooWeak) as info:
        PasswordMethod(weak, **FAST).check_for_backup()
    assert weak not in str(info.value)
    PasswordMethod(weak, allow_weak=True, **FAST).check_for_backup()


@pytest.mark.parametrize("strong", ["purple-otter-violin-gravel-quibble-fjord", "Xk9#mQ2vLp7!zR4w",
                                    "ünïcødé pässwörd crumpet maverick"])
def test_passphrases_pass_the_strength_check(strong):
    assert password_strength_bits(strong) >= MIN_PASSWORD_BITS
    PasswordMethod(strong, **FAST).check_for_backup()


@given(st.text(min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_strength_estimate_is_bounded_and_never_fails(text):
    bits = password_strength_bits(text)
    assert 0.0 <= bits <= len(text) * 8


def test_a_weak_password_backup_is_refused_before_anything_runs(generated: Wallet):
    with pytest.raises(BackupPasswordTooWeak):
        generated.client.backup(PasswordMethod("123456", **FAST))
    assert generated.custodian.get_client(generated.client_id)["backup_share_status"] == "NOT_CREATED"


# Hardened PASSWORD (version 2): the custodian's VOPRF evaluation per guess
def _custodian_evaluates(method, key, record=None):
    element = method.hardening_request(record)
    evaluated, proof = oprf.voprf_blind_evaluate(key, element)
    method.finish_hardening(evaluated, proof, key.public_key())


def test_hardened_password_round_trip_needs_the_custodians_key():
    key, _ = encrypt_backup(SHARE, CTX)
    server_key, _ = oprf.generate_key_pair()
    backup = PasswordMethod("violet tractor moss lantern quibble fjord", **FAST)
    _custodian_evaluates(backup, server_key)
    record = backup.store_key(CTX, key)
    other_record = backup.store_key(BackupContext("client-1", "ed25519"), key)
    body = len(b"MPBK\x01") + 1 + len(b"PASSWORD")
    assert record[body:body + 1] == b"\x02"
    assert record[body:body + 66] == other_record[body:body + 66]  # one setting (salt, pinned pkS) per backup

    recover = PasswordMethod("violet tractor moss lantern quibble fjord", **FAST)
    with pytest.raises(UsageError):  # no evaluation yet: nothing to guess with
        recover.load_key(CTX, record)
    _custodian_evaluates(recover, server_key, record)
    assert recover.load_key(CTX, record) == key

    wrong = PasswordMethod("violet tractor moss lantern quibble fjords", **FAST)
    _custodian_evaluates(wrong, server_key, record)
    with pytest.raises(BackupPasswordInvalid):
        wrong.load_key(CTX, record)


def test_hardened_password_refuses_an_evaluation_with_another_key():
    key, _ = encrypt_backup(SHARE, CTX)
    server_key, _ = oprf.generate_key_pair()
    backup = PasswordMethod("violet tractor moss lantern quibble fjord", **FAST)
    _custodian_evaluates(backup, server_key)
    record = backup.store_key(CTX, key)
    recover = PasswordMethod("violet tractor moss lantern quibble fjord", **FAST)
    with pytest.raises(ProofError):
        _custodian_evaluates(recover, oprf.generate_key_pair()[0], record)


def test_a_record_with_a_swapped_public_key_does_not_open():
    key, _ = encrypt_backup(SHARE, CTX)
    server_key, _ = oprf.generate_key_pair()
    other_key, other_public = oprf.generate_key_pair()
    backup = PasswordMethod("violet tractor moss lantern quibble fjord", **FAST)
    _custodian_evaluates(backup, server_key)
    record = bytearray(backup.store_key(CTX, key))
    body = len(b"MPBK\x01") + 1 + len(b"PASSWORD")
    record[body + 33: body + 66] = other_public  # the pinned pkS sits after version, limits and salt
    recover = PasswordMethod("violet tractor moss lantern quibble fjord", **FAST)
    _custodian_evaluates(recover, other_key, bytes(record))
    with pytest.raises(BackupPasswordInvalid):
        recover.load_key(CTX, bytes(record))


def test_a_version_1_record_needs_no_evaluation():
    key, _ = encrypt_backup(SHARE, CTX)
    record = PasswordMethod("violet tractor moss lantern quibble fjord", **V1).store_key(CTX, key)
    method = PasswordMethod("violet tractor moss lantern quibble fjord", **FAST)
    assert method.hardening_request(record) is None
    assert method.load_key(CTX, record) == key
    assert CloudMethod(MemoryCloudStorage()).hardening_request() is None
