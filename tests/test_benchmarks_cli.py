"""``python -m benchmarks`` selection: ``--only`` ignores case, ``--list`` runs nothing, and a
selection that matches no case is an error (status 2), not an empty table."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import main, select
from benchmarks.timing import Case


def _case(name: str, *references: str) -> Case:
    def never_run() -> None:
        raise AssertionError(f"{name} was run")

    return Case(name, never_run, references=references)


CASES = [
    _case("ref/pynacl sign ed25519"),
    _case("ref/python-ecdsa sign secp256k1"),
    _case("frost sign 2-of-2 end to end", "ref/pynacl sign ed25519"),
    _case("frost dkg 3-of-5 end to end"),
    _case("ecdsa2p sign end to end [gmpy2]", "ref/python-ecdsa sign secp256k1"),
]


def names(selected: list[Case]) -> list[str]:
    return [c.name for c in selected]


def test_only_is_a_case_insensitive_substring_with_references() -> None:
    selected, by_words = select(CASES, "FROST Sign 2-OF-2")
    assert names(selected) == ["ref/pynacl sign ed25519", "frost sign 2-of-2 end to end"]
    assert not by_words
    assert names(select(CASES, "End To End")[0]) == [c.name for c in CASES]  # references of matches too


def test_only_falls_back_to_every_word_when_no_name_holds_the_text() -> None:
    selected, by_words = select(CASES, "FROST 2-of-2")
    assert by_words
    assert names(selected) == ["ref/pynacl sign ed25519", "frost sign 2-of-2 end to end"]


def test_no_match_selects_nothing_not_even_references() -> None:
    assert select(CASES, "bls sign") == ([], True)
    assert select(CASES, "ed25519 3-of-5") == ([], True)  # each word matches some case, none all


def test_no_only_selects_everything() -> None:
    assert names(select(CASES, None)[0]) == names(CASES)


def test_list_prints_the_selection_without_running(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--only", "FROST 2-of-2", "--list"]) == 0
    out, err = capsys.readouterr()
    listed = out.splitlines()
    assert listed and "frost sign 2-of-2 end to end" in listed
    assert all("frost" in n and "2-of-2" in n or n.startswith("ref/") for n in listed)
    assert "each of its words" in err


def test_nothing_matched_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--only", "no such benchmark case"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "no benchmark case matches --only 'no such benchmark case'" in err
