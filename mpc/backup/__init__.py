"""Backups of a wallet (docs/backup.md): how the client's backup share is kept and how a device
proves it holds it. Its modules::

    methods      the backup methods (PASSWORD, CLOUD, PASSKEY): encryption of the client's
                 backup share, password hardening, cloud and passkey key storage
    versions     versioned backup pairs: a new backup is pending until complete, then promoted
    webhook      handing the custodian's backup share to a self-managed backup (the webhook)
    possession   proofs of possession of the client's shares, bound to a custodian nonce
    attempts     counting failed proofs and password guesses; the lockout
    custodian_ops  the custodian's backup, recover and eject operations (over ``BackupService``,
                 what they use of ``mpc.Custodian``)
    client_ops   the device's backup, recover and eject operations and ``EjectedKeys`` (over
                 ``BackupDevice``, what they use of ``mpc.Client``)
"""
