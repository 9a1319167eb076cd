"""Command-line options that may also come from the environment: ``--some-flag`` is
``$PORTAL_MPC_SOME_FLAG`` (``python -m mpc serve``; ``docs/operations.md``, Run and configure).

A flag given on the command line wins over the environment; an empty variable counts as unset.
Booleans take ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (and the flag
``--no-...`` turns off what the environment turned on). A value that does not convert is an
error naming the variable (reported only when the command that reads it runs).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ENV_PREFIX", "env_name", "apply_environment", "environment_options"]

ENV_PREFIX = "PORTAL_MPC_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def env_name(action: argparse.Action) -> str:
    """The environment variable of an option: ``PORTAL_MPC_`` and its destination in capitals."""
    return ENV_PREFIX + action.dest.upper()


def environment_options(parser: argparse.ArgumentParser, skip: Iterable[str] = ()) -> list[argparse.Action]:
    """The options of ``parser`` that the environment may set (not ``--help``, not ``skip``)."""
    skipped = set(skip) | {"help"}
    return [action for action in parser._actions
            if action.option_strings and action.dest not in skipped and not isinstance(action, argparse._HelpAction)]


def _convert(action: argparse.Action, raw: str) -> Any:
    if isinstance(action, (argparse.BooleanOptionalAction, argparse._StoreTrueAction)):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("expected 1/true/yes/on or 0/false/no/off")
    value = action.type(raw) if callable(action.type) else raw
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"expected one of {', '.join(map(str, action.choices))}")
    return value


def apply_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None, *,
                      skip: Iterable[str] = ()) -> list[str]:
    """Make ``$PORTAL_MPC_<DEST>`` the default of each option of ``parser`` (but ``skip``), name
    the variable in each option's help, and return the errors of values that did not convert
    (those options keep their defaults; the caller reports the errors when it runs)."""
    environ = os.environ if environ is None else environ
    defaults: dict[str, Any] = {}
    problems: list[str] = []
    for action in environment_options(parser, skip):
        name = env_name(action)
        if action.help is not None and action.help != argparse.SUPPRESS:
            action.help = f"{action.help} [env {name}]"
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        try:
            defaults[action.dest] = _convert(action, raw)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            problems.append(f"${name}={raw[:64]!r} is not valid for {action.option_strings[0]}: {exc}")
    parser.set_defaults(**defaults)
    return problems
