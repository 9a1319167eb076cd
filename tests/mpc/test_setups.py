"""The device's ring-Pedersen setup (one per keychain and level), the published-parameters
deployment option, and a custodian that refuses a stored setup of another level."""

from __future__ import annotations

import pytest

import mpc
from mpc.backup.methods import MemoryCloudStorage
from mpc.client import DEVICE_SETUP_ENTRY, device_setup_entry
from mpc.errors import StateInvalid
from protocols import ecdsa2p
from protocols.ecdsa2p.setup import setup_from_ring_pedersen
from tests.fixtures import keys_3072
from tests.mpc.conftest import Wallet, data_for, verify_result


def test_one_device_setup_per_keychain_kept_for_good() -> None:
    keychain, cloud = mpc.MemoryKeychain(), MemoryCloudStorage()
    first = mpc.Client("a", keychain, cloud=cloud).device_setup()
    again = mpc.Client("b", keychain, cloud=cloud).device_setup()
    assert DEVICE_SETUP_ENTRY in keychain and first.public.fingerprint == again.public.fingerprint
    assert device_setup_entry(ecdsa2p.LEVEL_128) != DEVICE_SETUP_ENTRY


def test_published_parameters_option_end_to_end(client_setup: ecdsa2p.ClientSetup) -> None:
    custodian = mpc.Custodian()
    client_id = custodian.create_client()
    client = mpc.Client(client_id, mpc.MemoryKeychain(), cloud=MemoryCloudStorage(), published_setup=client_setup.public)
    w = Wallet(custodian, client_id, client, client.cloud)  # type: ignore[arg-type]
    w.generate()
    assert DEVICE_SETUP_ENTRY not in client.keychain  # no trapdoor on the device
    verify_result(w.sign("ethereum", data_for("ethereum"))[0], data_for("ethereum"))


def test_a_custodian_refuses_a_stored_setup_of_another_level() -> None:
    store = mpc.SQLiteStore()
    mpc.Custodian(store).setup  # noqa: B018 - stores the default level's setup
    with pytest.raises(StateInvalid, match="security level"):
        mpc.Custodian(store, security_level=ecdsa2p.LEVEL_128).setup  # noqa: B018
    custodian = mpc.Custodian(mpc.SQLiteStore(), setup=setup_from_ring_pedersen(*keys_3072()[1][0], ecdsa2p.LEVEL_128),
                              security_level=ecdsa2p.LEVEL_128)
    assert custodian.setup.public.level == ecdsa2p.LEVEL_128
