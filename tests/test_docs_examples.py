"""The runnable examples in the docstrings of ``protocols.frost`` and ``protocols.ecdsa2p``.

Each docstring with examples is one test, run with ``doctest``. Two-party ECDSA keygen takes
about 1.5 s even with a pre-generated Paillier key (Π_mod, Π_fac and Π_log* at 2048 bits), so
its example lines are marked ``# doctest: +SKIP`` and the ECDSA examples run on one share pair
made here, once: keygen with the test setups (tests/conftest.py) and the pre-generated Paillier
key of ``tests/fixtures``, given to the examples as ``p1_share`` and ``p2_share``.
"""

from __future__ import annotations

import copy
import doctest
from types import ModuleType

import pytest

from protocols import ecdsa2p, frost, paillier
from tests.fixtures import paillier_keys

MODULES: tuple[ModuleType, ...] = (frost, ecdsa2p)

# Docstrings that must keep runnable examples (the reference's entry points for both protocols).
REQUIRED = {
    "protocols.frost", "protocols.frost.dkg", "protocols.frost.sign",
    "protocols.ecdsa2p", "protocols.ecdsa2p.sign",
}


def _find() -> list[tuple[ModuleType, doctest.DocTest]]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [(module, test) for module in MODULES for test in finder.find(module) if test.examples]


TESTS = _find()


@pytest.fixture(scope="module")
def ecdsa_pair() -> tuple[ecdsa2p.P1KeyShare, ecdsa2p.P2KeyShare]:
    key = paillier_keys()[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(paillier, "keygen", lambda bits=2048: (key.public_key, key))
        return ecdsa2p.keygen()


def test_the_protocols_have_examples() -> None:
    assert REQUIRED <= {test.name for _, test in TESTS}


@pytest.mark.parametrize(("module", "test"), TESTS, ids=[test.name for _, test in TESTS])
def test_docstring_examples(module: ModuleType, test: doctest.DocTest, request: pytest.FixtureRequest) -> None:
    test = copy.copy(test)
    test.globs = dict(vars(module))  # fresh globals: the runner clears them afterwards
    if "p1_share" in "".join(example.source for example in test.examples):
        test.globs["p1_share"], test.globs["p2_share"] = request.getfixturevalue("ecdsa_pair")
    output: list[str] = []
    result = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test, out=output.append)
    assert result.failed == 0, "".join(output)
