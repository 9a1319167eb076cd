"""Where the engine keeps its state: the custodian's store and the device's keychain.

    store          the custodian's store on SQLite (shares, statuses, backups, locks)
    backends       opening a store by URL: a SQLite file or PostgreSQL (``open_store``)
    urls           PostgreSQL URLs: the schema option, passwords, a connection in a schema
    sealing        envelope encryption of the custodian's secrets at rest (AES-256-GCM)
    keychain       the device's keychain: file-based and in-memory
    restore_guard  detecting a restored database with a counter kept outside it

Nothing here imports the service or the remote client; importing this package loads no database
driver (``psycopg`` is imported only when a PostgreSQL URL is opened).
"""
