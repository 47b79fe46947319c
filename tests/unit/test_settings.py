"""Settings: the variable names Letta users already set, and our AGENTHOST_ prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from agenthost.settings import Settings


def test_letta_variable_names_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LETTA_PG_URI", "postgresql://u@h:5432/db")
    settings = Settings()
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-test"
    assert settings.openai_base_url == "http://127.0.0.1:9/v1"
    assert settings.is_postgres
    assert settings.sqlalchemy_url() == "postgresql+asyncpg://u@h:5432/db"


def test_openai_base_url_wins_over_its_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://a/v1")
    monkeypatch.setenv("OPENAI_API_BASE", "http://b/v1")
    assert Settings().openai_base_url == "http://a/v1"


def test_own_prefix_and_sqlite_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTHOST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGENTHOST_MAX_CONCURRENT_RUNS", "3")
    settings = Settings()
    assert settings.max_concurrent_runs == 3
    assert not settings.is_postgres
    assert settings.sqlalchemy_url() == f"sqlite+agenthost_aiosqlite:///{tmp_path / 'agenthost.db'}"


def test_secrets_do_not_leak_into_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    assert "sk-very-secret" not in repr(Settings())


def test_the_distributed_engine_needs_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHOST_ENGINE", "procrastinate")
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        Settings()
    monkeypatch.setenv("LETTA_PG_URI", "postgresql+asyncpg://u@db:5432/agents")
    settings = Settings()
    assert settings.engine == "procrastinate"
    # procrastinate's driver (psycopg) takes a plain libpq URL.
    assert settings.psycopg_conninfo() == "postgresql://u@db:5432/agents"


def test_a_worker_without_the_distributed_engine_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from agenthost.cli import main

    assert main(["worker"]) == 2
    assert "AGENTHOST_ENGINE=procrastinate" in capsys.readouterr().err


def test_failure_detection_must_outlast_a_late_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHOST_HEARTBEAT_INTERVAL_S", "2")
    monkeypatch.setenv("AGENTHOST_STALLED_AFTER_S", "3")
    with pytest.raises(ValueError, match="at least twice AGENTHOST_HEARTBEAT_INTERVAL_S"):
        Settings()
    monkeypatch.setenv("AGENTHOST_STALLED_AFTER_S", "4")
    assert Settings().stalled_after_s == 4


def test_local_model_slots_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTHOST_LOCAL_PARALLEL", "8")
    assert Settings().local_parallel == 8
    monkeypatch.setenv("AGENTHOST_LOCAL_PARALLEL", "0")
    with pytest.raises(ValueError, match="local_parallel"):
        Settings()
