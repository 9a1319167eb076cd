"""Command line: ``python -m mpc demo [--dir DIR] [--server]``, ``python -m mpc setup [--db DB]
[--device DIR]`` and
``python -m mpc serve [--db URL] [--host 127.0.0.1] [--port N]`` (the WebSocket custodian,
``mpc.service.server``; ``demo --server`` runs the lifecycle against one on loopback).

``demo`` walks the whole wallet lifecycle in one process, with the custodian's state in a SQLite
file and the device's keychain and cloud folder on disk: create a client, generate, show the
addresses, sign on every chain (each signature checked by a standard single-key verifier), sign
one real transaction per chain with ``mpc.chains``, each verified by the chain's own library
(the ``chains`` extra; a chain whose library is missing is skipped), back up, wipe the device,
recover on a new device, sign again (and once more from the custodian's precomputed pool). The
state lives in a temporary folder deleted at the end, or in ``--dir DIR`` (kept: a later run
reuses the custodian's setup).

``nonce-epoch --bump`` kills the parked sessions of a restored custodian database: defence in
depth, not needed for safety (the custodian is rollback-safe by construction:
``docs/threat-model.md``, Rollback).

``store-key new --out FILE`` makes a key that seals the custodian's secrets at rest
(``mpc.storage.sealing``); ``store-key rotate --new-key-file FILE`` re-seals every secret of the store
under it (or seals a plaintext store) in one transaction (``docs/operations.md``, Key
management). ``serve --store-key-file FILE`` runs with that key. The database URL of ``serve``,
``setup``, ``nonce-epoch`` and ``store-key`` may come from ``$PORTAL_MPC_DB``; a ``--db`` URL
with a password is refused (the command line is visible to every user of the machine: use
``$PORTAL_MPC_DB``, or PostgreSQL's ``PGPASSWORD`` / ``PGPASSFILE``).

``setup`` creates a long-lived ring-Pedersen setup ahead of time: the custodian's (``--db``,
stored in its database) and/or a device's (``--device``, kept in that keychain folder; the
custodian proves every c3 against it). Each takes seconds with gmpy2 (two safe primes).
"""

from __future__ import annotations

import argparse
import os
import hashlib
import sys
import tempfile
import time
from pathlib import Path

from ecdsa import SECP256k1, VerifyingKey
from ecdsa.util import sigdecode_string
from nacl.signing import VerifyKey

import mpc
from mpc.backup.methods import LocalFolderCloudStorage
from mpc.wallet import CHAINS, curve_of_chain


DESCRIPTION = """\
portal-mpc: the threshold wallet engine's command line.

  demo         the whole wallet lifecycle in this process (--server: over WebSockets on loopback)
  setup        make a long-lived ring-Pedersen setup ahead of time (custodian --db, device --device)
  serve        run the custodian as a WebSocket service (docs/operations.md)
  store-key    make or rotate the key sealing the custodian's secrets at rest
  nonce-epoch  show the custodian's nonce epoch; --bump it after restoring the database

Every command takes --help. The database URL of serve, setup, nonce-epoch and store-key may come
from $PORTAL_MPC_DB (a URL with a password must: a command line is visible to every user).
"""

# Configuration and storage errors a command reports in one line (their messages say what to do);
# anything else keeps its traceback.
_ONE_LINE_ERRORS = ("CONFIG_INVALID", "TRANSPORT_INSECURE", "STORE_KEY_MISSING", "STORE_KEY_INVALID",
                    "STORE_NOT_SEALED", "STORE_SCHEMA_UNSUPPORTED", "STORE_CORRUPTED", "STORE_UNAVAILABLE")


def _say(step: str, detail: str = "") -> None:
    print(f"  {step:<34} {detail}")


def _progress(text: str) -> None:
    """A progress line on stderr for a step that takes more than a second (stdout stays the result)."""
    print(f"  ... {text}", file=sys.stderr, flush=True)


def _statuses(custodian: mpc.Custodian, client_id: str) -> str:
    view = custodian.get_client(client_id)
    return f"signing={view['signing_share_status']} backup={view['backup_share_status']}"


def _verify(result: mpc.SignResult, data: bytes) -> str:
    """Check a signature with an ordinary single-key verifier (python-ecdsa / PyNaCl); raises if it fails."""
    if result.curve == "secp256k1":
        key = VerifyingKey.from_string(result.public_key, curve=SECP256k1)
        key.verify_digest(result.signature, data, sigdecode=sigdecode_string)
        return f"verified by python-ecdsa under the wallet's key (v={result.v})"
    VerifyKey(result.public_key).verify(data, result.signature)
    return "verified by PyNaCl (Ed25519) under the wallet's key"


def _sign_everywhere(client: mpc.Client, custodian: mpc.Custodian, client_id: str) -> None:
    for chain in CHAINS:
        payload = f"demo payment on {chain} at {time.time():.0f}".encode()
        data = hashlib.sha256(payload).digest() if curve_of_chain(chain) == "secp256k1" else payload
        start = time.perf_counter()
        result, _ = mpc.run_local(client.sign(chain, data), custodian.sign(client_id, chain, data))
        elapsed = (time.perf_counter() - start) * 1000
        _say(f"sign on {chain}", f"{result.signature.hex()[:24]}… {_verify(result, data)} ({elapsed:.0f} ms)")


def _sign_precomputed(client: mpc.Client, custodian: mpc.Custodian, client_id: str) -> None:
    """Fast ECDSA signing: the custodian precomputes (single use, in its memory); the device keeps nothing."""
    start = time.perf_counter()
    mpc.run_local(client.presign(4), custodian.presign(client_id, 4))
    pool = custodian.presignature_count(client_id)["secp256k1"]
    _say("presign (custodian precomputes)", f"pool of {pool}, nothing stored on the device "
         f"({time.perf_counter() - start:.1f} s)")
    data = hashlib.sha256(b"demo payment from the precomputed pool").digest()
    start = time.perf_counter()
    result, _ = mpc.run_local(client.sign("ethereum", data), custodian.sign(client_id, "ethereum", data))
    elapsed = (time.perf_counter() - start) * 1000
    _say("sign on ethereum, precomputed", f"{result.signature.hex()[:24]}… {_verify(result, data)} ({elapsed:.0f} ms)")


def _chain_transactions(client: mpc.Client, custodian: mpc.Custodian, client_id: str) -> int:
    """One real transaction per chain through mpc.chains, each verified by the chain's library (a
    chain without its library is skipped); returns how many did not verify."""
    from mpc.chains import local_signer
    from mpc.chains._demo import show_transactions

    return show_transactions(local_signer(client, custodian, client_id), client.addresses(), _say)


_HD_ACCOUNTS = ["m/84'/0'/0'", "m/44'/60'/1'"]
_HD_RECEIVE = "m/84'/0'/0'/0/0"


def _hd_accounts(client: mpc.Client, custodian: mpc.Custodian, client_id: str) -> str:
    """HD accounts (docs/hd.md): a Bitcoin account with a fresh receive address and its xpub for a
    watch-only wallet, and a second Ethereum account, signed for at a path."""
    accounts = _HD_ACCOUNTS
    start = time.perf_counter()
    mpc.run_local(client.derive(accounts), custodian.derive(client_id, accounts))
    _say("derive two accounts", f"{', '.join(accounts)} ({time.perf_counter() - start:.2f} s)")
    _say("  bitcoin account xpub", client.extended_public_key("bitcoin", accounts[0])[:32] + "…")
    receive = client.address("bitcoin", _HD_RECEIVE)
    _say("  fresh bitcoin receive address", f"{receive} ({_HD_RECEIVE})")
    _say("  second ethereum account", f"{client.address('ethereum', accounts[1] + '/0/0')} (m/44'/60'/1'/0/0)")
    data = hashlib.sha256(b"demo payment from the second account").digest()
    path = accounts[1] + "/0/0"
    result, _ = mpc.run_local(client.sign("ethereum", data, path=path),
                              custodian.sign(client_id, "ethereum", data, path=path))
    _say("  sign at m/44'/60'/1'/0/0", f"{result.signature.hex()[:24]}… {_verify(result, data)}")
    return receive


def demo(directory: Path, temporary: bool = False) -> int:
    """The whole lifecycle in this process; ``temporary``: ``directory`` is deleted afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    where = (f"a temporary folder deleted at the end ({directory}; --dir DIR keeps it)" if temporary
             else f"{directory} (kept)")
    print(f"portal-mpc demo: state in {where}")
    from mpc.client import device_setup_entry
    from mpc.storage.sealing import Sealer, key_file

    key = key_file(directory / "store.key")
    custodian = mpc.Custodian(mpc.SQLiteStore(str(directory / "custodian.sqlite3"), sealer=Sealer(key)))
    _say("custodian store sealed", f"key {key.key_id} in {directory / 'store.key'} (beside the database: "
         "a demo only; a deployment keeps it away from the database and its backups)")
    start = time.perf_counter()
    stored = custodian.store.load_setup() is not None
    if not stored:
        _progress("making the custodian's setup (two safe primes: seconds, longer without gmpy2)")
    custodian.setup  # noqa: B018 - created once (safe primes) and stored
    if stored:
        made = f"loaded from {directory} (made by an earlier run)"
    elif temporary:
        made = f"made in {time.perf_counter() - start:.1f} s; deleted with the temporary folder"
    else:
        made = f"made in {time.perf_counter() - start:.1f} s; kept in {directory} for later runs"
    _say("custodian setup ready", made)
    client_id = custodian.create_client()
    _say("create client", client_id)
    cloud = LocalFolderCloudStorage(directory / "cloud")
    device = mpc.Client(client_id, mpc.FileKeychain(directory / "device-1"), cloud=cloud)

    start = time.perf_counter()
    first_setup = device_setup_entry(device.security_level) not in device.keychain
    _progress("generating the wallet (two-party keygen on both curves" +
              (", and the device's one-time setup)" if first_setup else ")"))
    mpc.run_local(device.generate(), custodian.generate(client_id))
    elapsed = f"{time.perf_counter() - start:.1f} s" + (", with the device's one-time setup" if first_setup else "")
    _say("generate (secp256k1 + ed25519)", f"{_statuses(custodian, client_id)} ({elapsed})")
    before = device.addresses()
    for chain, address in before.items():
        _say(f"  {chain} address", address)
    _sign_everywhere(device, custodian, client_id)
    unverified = _chain_transactions(device, custodian, client_id)
    receive = _hd_accounts(device, custodian, client_id)

    mpc.run_local(device.backup(), custodian.backup(client_id))
    _say("backup (CLOUD)", _statuses(custodian, client_id))
    device.wipe()
    _say("device wiped", f"has wallet: {device.has_wallet()}")

    new_device = mpc.Client(client_id, mpc.FileKeychain(directory / "device-2"), cloud=cloud)
    mpc.run_local(new_device.recover(), custodian.recover(client_id))
    _say("recover on a new device", _statuses(custodian, client_id))
    mpc.run_local(new_device.derive(_HD_ACCOUNTS), custodian.derive(client_id, _HD_ACCOUNTS))
    same = new_device.addresses() == before and new_device.address("bitcoin", _HD_RECEIVE) == receive
    _say("addresses unchanged", f"{same} (the accounts derived again on the new device: the same)")
    _sign_everywhere(new_device, custodian, client_id)
    _sign_precomputed(new_device, custodian, client_id)
    if unverified:
        print(f"done, but {unverified} chain transaction(s) did not verify")
    else:
        print("done")
    return 0 if same and not unverified else 1


def setup(db: str | None, device: Path | None, level_name: str = "112") -> int:
    from protocols.zk.params import level_by_name

    level = level_by_name(level_name)
    start = time.perf_counter()
    if device is not None:
        from mpc.client import make_device_setup

        def progress(note: str) -> None:
            _progress(f"{note} ({time.perf_counter() - start:.1f} s)")

        _progress(f"making the device's setup for level {level_name} (two safe primes)")

        made = make_device_setup(mpc.FileKeychain(device), progress, level)
        print(f"device setup {made.public.fingerprint.hex()[:16]}… kept in {device} "
              f"({time.perf_counter() - start:.1f} s)")
    if db is not None:
        from mpc.storage.backends import open_store

        custodian = mpc.Custodian(open_store(db), security_level=level)
        if custodian.store.load_setup() is None:
            _progress(f"making the custodian's setup for level {level_name} (two safe primes: seconds, "
                      "longer without gmpy2)")
        fingerprint = custodian.setup.public.fingerprint.hex()
        print(f"custodian setup {fingerprint[:16]}… stored in {db} ({time.perf_counter() - start:.1f} s)")
    return 0


def nonce_epoch(db: str, bump: bool) -> int:
    from mpc.storage.backends import open_store

    store = open_store(db)
    try:
        if bump:
            print(f"nonce epoch is now {store.bump_nonce_epoch()}: every parked session of the restored "
                  "database is dead")
        else:
            print(f"nonce epoch {store.nonce_epoch()}")
    finally:
        store.close()
    return 0


def store_key_new(out: Path) -> int:
    from mpc.storage.sealing import new_key_file

    key = new_key_file(out)
    print(f"new store key {key.key_id} in {out} (mode 0600): keep it out of the database's backups; "
          f"serve --store-key-file {out}")
    return 0


def store_key_rotate(db: str, new_key_file: Path, old_key_files: list[Path]) -> int:
    from mpc.storage.sealing import KeyProvider, LocalKeyProvider, Sealer
    from mpc.storage.backends import rotate_store_key

    new = LocalKeyProvider.from_file(new_key_file)
    old: list[KeyProvider]
    if old_key_files:
        old = [LocalKeyProvider.from_file(path) for path in old_key_files]
    else:  # the keys the environment configures (what the service runs with now)
        configured = Sealer.from_env()
        old = [] if configured is None else list(configured.providers)
    count = rotate_store_key(db, new, old)
    print(f"{count} secret values sealed under {new.key_id}: the store needs only that key now "
          f"(serve --store-key-file {new_key_file}); destroy the old key once no process uses it")
    return 0


def _database(parser: argparse.ArgumentParser, given: str | None, default: str | None = None) -> str | None:
    """``--db``, else ``$PORTAL_MPC_DB``, else ``default``; a ``--db`` with a password is refused."""
    from mpc.storage.backends import DB_ENV, url_has_password

    if given is None:
        return os.environ.get(DB_ENV) or default
    if url_has_password(given):
        parser.error(f"--db must not carry a password (a command line is visible to every user of the machine): "
                     f"put the URL in ${DB_ENV}, or the password in PGPASSWORD or a PGPASSFILE")
    return given


def _prog() -> str:
    """``portal-mpc`` when run as the console script, else ``python -m mpc``."""
    return "portal-mpc" if Path(sys.argv[0]).name == "portal-mpc" else "python -m mpc"


def _ledger_location(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """Where ``serve --ledger`` puts the revocation ledger (None: ``$PORTAL_MPC_LEDGER`` or no
    ledger); with neither the flag nor the variable, the default file next to the restore guard.
    A URL with a password is refused here, before anything is set."""
    from mpc.storage.backends import url_has_password
    from mpc.storage.ledger import ENV_VAR, default_path

    where: str | None = args.ledger
    if where is None and not os.environ.get(ENV_VAR) and args.restore_guard is not None:
        where = str(default_path(args.restore_guard))
    if where is not None and url_has_password(where):
        parser.error("--ledger: a URL with a password does not belong on a command line "
                     "(use $PORTAL_MPC_LEDGER, PGPASSWORD or PGPASSFILE)")
    return where


def _export_worker_environment(args: argparse.Namespace, ledger: str | None) -> None:
    """What ``serve``'s flags name that every worker process reads itself, from the environment:
    the restore guard, the ledger and its key file, the store key file."""
    from mpc.storage import ledger as ledger_env
    from mpc.storage.restore_guard import ENV_VAR as GUARD_ENV
    from mpc.storage.sealing import KEY_ENV, KEY_FILE_ENV

    if args.restore_guard is not None:
        os.environ[GUARD_ENV] = str(args.restore_guard)
    if ledger is not None:
        os.environ[ledger_env.ENV_VAR] = ledger
    if args.ledger_key_file is not None:
        os.environ[ledger_env.KEY_FILE_ENV] = str(args.ledger_key_file)
    if args.store_key_file is not None:
        os.environ.pop(KEY_ENV, None)  # the flag names the key; a second one would be ambiguous
        os.environ[KEY_FILE_ENV] = str(args.store_key_file)


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace, env_problems: list[str]) -> int:
    """``serve``: every argument is checked first (a refused one changes nothing in this process:
    no log handler installed, no environment variable set), then logging, the environment the
    worker processes read, and the service."""
    from dataclasses import fields

    from mpc.errors import ConfigInvalid
    from mpc.service.guard import ServiceLimits, environment_operator_key, load_operator_key
    from mpc.service.logs import configure_logging
    from mpc.service.server import serve_forever

    if env_problems:
        parser.error("; ".join(env_problems))
    args.db = _database(parser, args.db, "custodian.sqlite3")
    ledger = _ledger_location(parser, args)
    try:
        limits = ServiceLimits(**{f.name: getattr(args, f.name) for f in fields(ServiceLimits)
                                  if hasattr(args, f.name)})
        operator_key = load_operator_key(args.operator_key_file, environment_operator_key())
    except ConfigInvalid as exc:
        parser.error(f"{exc.code}: {exc.message}")
    try:
        configure_logging(args.log_format, args.log_level, args.audit_log, connection_logs=args.log_connections)
    except OSError as exc:
        parser.error(f"cannot open the audit log {args.audit_log}: {exc.strerror or exc}")
    _export_worker_environment(args, ledger)
    return serve_forever(args.db, args.host, args.port, session_ttl=args.session_ttl,
                         executor=args.executor, workers=args.workers, tls_cert=args.tls_cert,
                         tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
                         allow_plaintext=args.insecure_plaintext, operator_key=operator_key,
                         operator_cert_cn=args.operator_cert_cn, open_registration=args.open_registration,
                         limits=limits, metrics_public=args.metrics_public, lock_ttl=args.lock_ttl,
                         node_ttl=args.node_ttl, drain_grace=args.drain_grace)


def main(argv: list[str] | None = None) -> int:
    """The ``portal-mpc`` console script and ``python -m mpc``: parse ``argv`` and run the command.
    A configuration or storage error (``_ONE_LINE_ERRORS``) prints one line with its code and what to
    do, and exits with status 2."""
    prog = _prog()
    try:
        return _main(prog, argv)
    except mpc.EngineError as exc:
        if exc.code not in _ONE_LINE_ERRORS:
            raise
        print(f"{prog}: error: {exc.code}: {exc.message} (docs/errors.md)", file=sys.stderr)
        return 2


def build_parser(prog: str = "python -m mpc") -> tuple[argparse.ArgumentParser, list[str]]:
    """The command line's parser, and the problems of the ``$PORTAL_MPC_<FLAG>`` values for serve."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"portal-mpc {mpc.__version__}",
                        help="print the version (mpc.__version__) and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo_parser = commands.add_parser("demo", help="run the whole wallet lifecycle")
    demo_parser.add_argument("--dir", type=Path, help="where to keep the state (default: a temporary folder)")
    demo_parser.add_argument("--server", action="store_true",
                             help="run it over WebSockets against a custodian service started on 127.0.0.1")
    setup_parser = commands.add_parser(
        "setup", help="make a long-lived ring-Pedersen setup ahead of time (custodian and/or device)")
    setup_parser.add_argument("--db", help="custodian store: SQLite file or postgresql:// URL "
                                           "(default: $PORTAL_MPC_DB when --device is not given)")
    setup_parser.add_argument("--device", type=Path,
                              help="device keychain folder: make the device's setup (the custodian proves c3 against it)")
    setup_parser.add_argument("--level", choices=("112", "128"), default="112",
                              help="security level: 112 (|N| = 2048, m = 80, default) or 128 (|N| = 3072, m = 128)")
    epoch_parser = commands.add_parser(
        "nonce-epoch", help="show the custodian's nonce epoch; --bump it to kill a restored database's parked "
                            "sessions (defence in depth)")
    epoch_parser.add_argument("--db", help="custodian store: SQLite file or postgresql:// URL (default: $PORTAL_MPC_DB)")
    epoch_parser.add_argument("--bump", action="store_true",
                              help="move to a new epoch: kill every parked session (with the service stopped, "
                                   "after restoring the database; not needed for safety)")
    serve_parser = commands.add_parser("serve", help="run the custodian as a WebSocket service")
    serve_parser.add_argument("--db", help="SQLite file or postgresql://user@host/db (default: $PORTAL_MPC_DB, "
                                           "else custodian.sqlite3; a password goes in $PORTAL_MPC_DB, "
                                           "PGPASSWORD or PGPASSFILE, never here)")
    serve_parser.add_argument("--store-key-file", type=Path, metavar="PATH",
                              help="the 0600 key file sealing the store's secrets (sets $PORTAL_MPC_STORE_KEY_FILE "
                                   "for the worker processes too; python -m mpc store-key new makes one)")
    serve_parser.add_argument("--host", default="127.0.0.1",
                              help="address to listen on (default %(default)s; without TLS only a loopback "
                                   "address is allowed unless --insecure-plaintext)")
    serve_parser.add_argument("--port", type=int, default=8765,
                              help="TCP port for WebSocket requests and GET /healthz, /readyz, /metrics "
                                   "(default %(default)s; 0 picks a free port)")
    serve_parser.add_argument("--session-ttl", type=float, default=300.0, metavar="SECONDS",
                              help="seconds a parked session may wait for its next message (default %(default)s)")
    serve_parser.add_argument("--executor", choices=("auto", "process", "thread"), default="auto",
                              help="where protocol steps run: process (a spawn pool, for a file or PostgreSQL "
                                   "database), thread, or auto (process unless the database is :memory:; "
                                   "default %(default)s)")
    serve_parser.add_argument("--workers", type=int, default=2, metavar="N",
                              help="executor workers: processes (or threads, at least 2) running protocol steps "
                                   "(default %(default)s)")
    serve_parser.add_argument("--restore-guard", type=Path, metavar="FILE",
                              help="counter file outside the database's backups: a restored database is "
                                   "detected (at start, before every single-use take, after a reconnect and "
                                   "periodically) and its nonce epoch bumped (mpc.storage.restore_guard; default: none)")
    serve_parser.add_argument("--ledger", metavar="FILE|URL",
                              help="revocation ledger outside the database's restore boundary: a file, or a "
                                   "postgresql:// URL of a database or schema never restored with the store's "
                                   "(mpc.storage.ledger; $PORTAL_MPC_LEDGER; default: 'revocation-ledger' next "
                                   "to the --restore-guard file, else none)")
    serve_parser.add_argument("--ledger-key-file", type=Path, metavar="FILE",
                              help="the ledger's key file ($PORTAL_MPC_LEDGER_KEY_FILE; default: derived from "
                                   "the store key)")
    from mpc.service.guard import OPERATOR_KEY_ENV, ServiceLimits

    tls_group = serve_parser.add_argument_group("TLS (docs/operations.md, Security)")
    tls_group.add_argument("--tls-cert", type=Path, metavar="FILE",
                           help="certificate chain (PEM): serve wss:// (default: none, plain ws://)")
    tls_group.add_argument("--tls-key", type=Path, metavar="FILE",
                           help="the certificate's private key (PEM, unencrypted, mode 0600)")
    tls_group.add_argument("--tls-client-ca", type=Path, metavar="FILE",
                           help="require client certificates signed by this CA (mTLS; default: none)")
    tls_group.add_argument("--insecure-plaintext", action=argparse.BooleanOptionalAction, default=False,
                           help="allow plain ws:// on a non-loopback address (only behind a TLS-terminating proxy; "
                                "default off)")
    operator_group = serve_parser.add_argument_group("operator credential")
    operator_group.add_argument("--operator-key-file", type=Path, metavar="FILE",
                                help=f"the operator key, or sha256:<hex> of it (else ${OPERATOR_KEY_ENV}; never "
                                     "on the command line)")
    operator_group.add_argument("--operator-cert-cn", metavar="NAME",
                                help="a client certificate with this subject CN is the operator too (mTLS; "
                                     "default: none)")
    operator_group.add_argument("--open-registration", action=argparse.BooleanOptionalAction, default=False,
                                help="let anyone create clients (required to start without an operator key; "
                                     "default off)")
    limit_group = serve_parser.add_argument_group("limits")
    limit_defaults = ServiceLimits()
    for flag, kind, text in (("max-connections", int, "open connections; more are closed with 1013"),
                             ("max-connections-per-ip", int, "open sockets per address (IPv6: per /64)"),
                             ("ip-rate", float, "new requests per second per address"),
                             ("ip-burst", int, "burst of new requests per address"),
                             ("client-rate", float, "requests per second per client"),
                             ("client-burst", int, "burst of requests per client"),
                             ("max-parked-per-client", int, "unfinished operations per client"),
                             ("first-frame-timeout", float, "seconds for the handshakes and the request frame"),
                             ("max-sockets", int, "open sockets, handshakes included (0: the descriptor limit, "
                                                  "raised to the hard one, less 64)")):
        name = flag.replace("-", "_")
        limit_group.add_argument(f"--{flag}", type=kind, default=getattr(limit_defaults, name),
                                 metavar="N" if kind is int else "X", help=f"{text} (default %(default)s)")
    from mpc.service.server import DEFAULT_DRAIN_GRACE, DEFAULT_LOCK_TTL, DEFAULT_NODE_TTL

    resilience_group = serve_parser.add_argument_group("resilience (docs/operations.md, Resilience)")
    resilience_group.add_argument("--lock-ttl", type=float, default=DEFAULT_LOCK_TTL, metavar="SECONDS",
                                  help="lease of a client's operation lock while one of its steps runs; parked, "
                                       "the lease is the session's (--session-ttl) (default %(default)s)")
    resilience_group.add_argument("--node-ttl", type=float, default=DEFAULT_NODE_TTL, metavar="SECONDS",
                                  help="a node silent for this long is dead: the steps it ran are lost and their "
                                       "locks freed (heartbeat every fifth of it; default %(default)s)")
    resilience_group.add_argument("--drain-grace", type=float, default=DEFAULT_DRAIN_GRACE, metavar="SECONDS",
                                  help="on SIGTERM, how long steps in flight may take to finish and park before "
                                       "the workers are stopped (default %(default)s)")
    observe_group = serve_parser.add_argument_group("logs and monitoring (docs/operations.md, Monitor)")
    observe_group.add_argument("--log-format", choices=("text", "json"), default="text",
                               help="log lines on stderr: text for people, json for one JSON object per line "
                                    "(default %(default)s)")
    observe_group.add_argument("--log-level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                               default="INFO", help="the least severe level logged (default %(default)s; audit "
                                                    "lines are written whatever the level)")
    observe_group.add_argument("--audit-log", type=Path, metavar="FILE",
                               help="append the audit lines (logger mpc.audit) to this file, created 0600, and to "
                                    "it alone (default: with the other log lines on stderr)")
    observe_group.add_argument("--log-connections", action=argparse.BooleanOptionalAction, default=False,
                               help="log the websockets library's line per connection opened and closed (INFO; "
                                    "default off: a connection flood would fill the log)")
    observe_group.add_argument("--metrics-public", action=argparse.BooleanOptionalAction, default=False,
                               help="serve GET /metrics without a credential (default off: it needs "
                                    "'Authorization: Bearer <operator key>' or the operator's client certificate)")
    from mpc.service.config import apply_environment

    # Every serve flag may come from $PORTAL_MPC_<FLAG> (the flag wins); --db and --store-key-file
    # already have theirs ($PORTAL_MPC_DB, $PORTAL_MPC_STORE_KEY_FILE), read where they are used.
    serve_env_problems = apply_environment(serve_parser, skip=("db", "store_key_file", "ledger"))
    key_parser = commands.add_parser("store-key", help="make or rotate the key sealing the custodian's secrets at rest")
    key_parser.add_argument("--db", help="custodian store for rotate (default: $PORTAL_MPC_DB)")
    key_commands = key_parser.add_subparsers(dest="key_command", required=True)
    new_parser = key_commands.add_parser("new", help="write a new random key to a new 0600 file")
    new_parser.add_argument("--out", type=Path, required=True, metavar="FILE",
                            help="the new key file (created with mode 0600; refused if it exists)")
    rotate_parser = key_commands.add_parser(
        "rotate", help="re-seal every secret of the store under a new key (or seal a plaintext store), "
                       "in one transaction")
    rotate_parser.add_argument("--db", dest="rotate_db", help="custodian store (also accepted before 'rotate')")
    rotate_parser.add_argument("--new-key-file", type=Path, required=True, metavar="FILE",
                               help="the key to seal under from now on (made by store-key new)")
    rotate_parser.add_argument("--old-key-file", type=Path, action="append", default=[], metavar="FILE",
                               help="a key the store is sealed with now (repeatable; default: the keys "
                                    "$PORTAL_MPC_STORE_KEY_FILE / _KEY and _OLD_KEY_FILES configure)")
    return parser, serve_env_problems


def _main(prog: str, argv: list[str] | None) -> int:
    parser, serve_env_problems = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command == "setup":
        db = _database(parser, args.db) if args.db is not None or args.device is None else None
        if db is None and args.device is None:
            parser.error("setup needs --db (or $PORTAL_MPC_DB) and/or --device")
        return setup(db, args.device, args.level)
    if args.command == "nonce-epoch":
        db = _database(parser, args.db)
        if db is None:
            parser.error("nonce-epoch needs --db or $PORTAL_MPC_DB")
        return nonce_epoch(db, args.bump)
    if args.command == "store-key":
        if args.key_command == "new":
            return store_key_new(args.out)
        db = _database(parser, args.rotate_db if args.rotate_db is not None else args.db)
        if db is None:
            parser.error("store-key rotate needs --db or $PORTAL_MPC_DB")
        return store_key_rotate(db, args.new_key_file, args.old_key_file)
    if args.command == "serve":
        return _serve(parser, args, serve_env_problems)
    if args.server:
        from mpc.service._demo import demo_server

        if args.dir is not None:
            return demo_server(args.dir, _say, _verify, _progress)
        with tempfile.TemporaryDirectory(prefix="portal-mpc-demo-") as tmp:
            return demo_server(Path(tmp), _say, _verify, _progress)
    if args.dir is not None:
        return demo(args.dir)
    with tempfile.TemporaryDirectory(prefix="portal-mpc-demo-") as tmp:
        return demo(Path(tmp), temporary=True)


if __name__ == "__main__":
    sys.exit(main())
