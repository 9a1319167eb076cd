"""``python -m benchmarks.paired``: cases run round-robin, call by call, setups untimed; unknown
names are an error (status 2) and nothing runs."""

from __future__ import annotations

import pytest

import benchmarks.paired as paired_module
from benchmarks.paired import main, paired
from benchmarks.timing import Case


def test_cases_alternate_call_by_call_and_setups_feed_the_calls() -> None:
    calls: list[str] = []
    cases = [Case("a", lambda: calls.append("a")),
             Case("b", lambda arg: calls.append(arg), setup=lambda: "b")]
    medians = paired(cases, runs=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert set(medians) == {"a", "b"} and all(m >= 0 for m in medians.values())


def test_an_unknown_name_runs_nothing_and_references_come_along(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[str] = []
    cases = [Case("ref", lambda: ran.append("ref")), Case("case", lambda: ran.append("case"), references=("ref",)),
             Case("other", lambda: ran.append("other"))]
    monkeypatch.setattr(paired_module, "collect", lambda quick: cases)
    assert main(["--runs", "1", "no such case"]) == 2
    assert "no such case" in capsys.readouterr().err and not ran
    assert main(["--runs", "2", "case"]) == 0
    assert set(ran) == {"ref", "case"} and "× ref" in capsys.readouterr().out
