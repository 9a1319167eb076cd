"""The networked custodian (``python -m mpc serve``): a WebSocket service around ``mpc.Custodian``.
Its modules::

    server         the service: connections, requests, per-step workers, the app
    health         the server's readiness checks, warming, draining and purge loop (a base class)
    guard          TLS, credentials and connection/rate limits
    store          what the service keeps beside the engine's store: tokens, parked sessions,
                   step leases, nodes
    results        finished results kept for a client whose connection was lost
    observability  health, readiness and metrics endpoints
    metrics, logs  the metrics registry and the JSON / audit logs
    config         configuration from the environment

The device side (``mpc.remote``) never imports this package.
"""
