"""``python -m mpc demo``: the end-to-end demonstration of what the engine can do."""

from __future__ import annotations

import argparse
import secrets
import sys

from protocols.examples.joint_key import joint_key_sessions
from protocols.local import run


def demo() -> int:
    for group in ("secp256k1", "ed25519"):
        results = run(joint_key_sessions(secrets.token_bytes(32), [1, 2], group))
        print(f"{group}: joint public key of 2 parties {results[0].public_key.to_bytes().hex()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpc")
    parser.add_argument("command", choices=["demo"])
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo()
    return 2


if __name__ == "__main__":
    sys.exit(main())
