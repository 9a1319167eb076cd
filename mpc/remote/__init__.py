"""The device side of the network: drive operations against a networked custodian.

    channel    the operation channel: frames, resumption after a lost connection, retries
    retries    the retry policy and the backoff inside its budget
    failures   what a failed connection means, and the TLS probe after a cut handshake
    specs      the requests and operations sent, and their typed results
    blocking   ``RemoteCustodian`` (blocking) and ``RetryPolicy``
    aio        ``AsyncRemoteCustodian`` (asyncio)

Needs the ``server`` extra (websockets). Nothing here imports the service (``mpc.service``): a
device app that uses ``RemoteCustodian`` does not load the custodian's server, store or pool.
"""

from mpc.remote.aio import AsyncRemoteCustodian
from mpc.remote.blocking import RemoteCustodian, RetryPolicy

__all__ = ["RemoteCustodian", "AsyncRemoteCustodian", "RetryPolicy"]
