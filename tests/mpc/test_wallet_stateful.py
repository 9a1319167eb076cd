"""Hypothesis state machine: random sequences of generate, backup, recover, sign and wipe.

After every step: the addresses never change once generated, every signature verifies with
standard verifiers, and the custodian's statuses match what happened.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import mpc
from mpc import errors
from mpc.wallet import CHAINS
from tests.mpc.conftest import data_for, new_wallet, verify_result


class WalletMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.wallet = new_wallet()
        self.device = self.wallet.client
        self.addresses: dict[str, str] | None = None
        self.backed_up = False

    @rule()
    def generate(self) -> None:
        if self.addresses is not None:
            try:
                mpc.run_local(self.device.generate(), self.wallet.custodian.generate(self.wallet.client_id))
            except errors.WalletAlreadyExists:
                return
            raise AssertionError("generate of an existing wallet was not refused")
        client_view, _ = mpc.run_local(self.device.generate(), self.wallet.custodian.generate(self.wallet.client_id))
        self.addresses = client_view

    @precondition(lambda self: self.addresses is not None)
    @rule(chain=st.sampled_from(CHAINS), text=st.binary(max_size=40))
    def sign(self, chain: str, text: bytes) -> None:
        data = data_for(chain, text)
        if not self.device.has_wallet():
            return
        result, other = self.wallet.sign(chain, data, client=self.device)
        assert result == other
        verify_result(result, data)

    @precondition(lambda self: self.addresses is not None)
    @rule()
    def backup(self) -> None:
        if not self.device.has_wallet():
            return
        self.wallet.backup(client=self.device)
        self.backed_up = True

    @precondition(lambda self: self.addresses is not None)
    @rule()
    def wipe_device(self) -> None:
        self.device.wipe()

    @precondition(lambda self: self.addresses is not None)
    @rule()
    def recover_on_new_device(self) -> None:
        device = self.wallet.device()
        if not self.backed_up:
            try:
                self.wallet.recover(device)
            except errors.BackupNotFound:
                return
            raise AssertionError("recover without a backup was not refused")
        recovered, _ = self.wallet.recover(device)
        assert recovered == self.addresses
        self.device = device

    @invariant()
    def addresses_never_change(self) -> None:
        view = self.wallet.custodian.get_client(self.wallet.client_id)
        if self.addresses is None:
            assert view["signing_share_status"] == "NOT_CREATED"
            return
        assert view["addresses"] == self.addresses
        assert view["signing_share_status"] == "STORED_CLIENT"
        expected_backup = "STORED_CLIENT_BACKUP_SHARE" if self.backed_up else "NOT_CREATED"
        assert view["backup_share_status"] == expected_backup
        if self.device.has_wallet():
            assert self.device.addresses() == self.addresses


WalletMachine.TestCase.settings = settings(
    max_examples=8, stateful_step_count=6, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestWalletLifecycle = WalletMachine.TestCase
