"""Missing infrastructure fails under any truthy CI value and skips elsewhere."""

from __future__ import annotations

import pytest

from tests.infra import require_infra


@pytest.mark.parametrize("value", ["true", "1", "yes", "True", "on", "gitlab", " TRUE "])
def test_any_truthy_ci_turns_missing_infrastructure_into_a_failure(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="no broker"):
        require_infra("no broker")


@pytest.mark.parametrize("value", [None, "", "0", "false", "FALSE", "no", "off"])
def test_without_ci_missing_infrastructure_is_a_skip(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="no broker"):
        require_infra("no broker")
