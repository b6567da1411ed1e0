"""Configuration comes from the environment, with defaults in one place and no secret in the repository."""

from __future__ import annotations

import stat

import pytest

from tshop.config import DEFAULTS, ConfigError, settings


def test_defaults_apply_when_the_environment_is_silent(tmp_path):
    config = settings({"TSHOP_STATE_DIR": str(tmp_path)})
    assert config.pg_port == int(DEFAULTS["TSHOP_PG_PORT"])
    assert config.clickhouse_port == 8123
    assert config.pg_database == "tshop"


def test_a_port_that_is_not_a_number_names_the_variable(tmp_path):
    config = settings({"TSHOP_STATE_DIR": str(tmp_path), "TSHOP_PG_PORT": "fifteen"})
    with pytest.raises(ConfigError, match="TSHOP_PG_PORT"):
        _ = config.pg_port


def test_passwords_are_generated_once_per_install_and_kept_private(tmp_path):
    config = settings({"TSHOP_STATE_DIR": str(tmp_path)})
    first = config.pg_password
    assert len(first) >= 20
    assert settings({"TSHOP_STATE_DIR": str(tmp_path)}).pg_password == first
    assert stat.S_IMODE(config.secrets_file.stat().st_mode) == 0o600
    # another install gets another password
    assert settings({"TSHOP_STATE_DIR": str(tmp_path / "other")}).pg_password != first


def test_the_environment_overrides_a_generated_password(tmp_path):
    config = settings({"TSHOP_STATE_DIR": str(tmp_path), "TSHOP_PG_PASSWORD": "from-env"})
    assert ":from-env@" in config.pg_dsn()


def test_an_external_dsn_is_used_as_given(tmp_path):
    dsn = "postgresql://someone:secret@db.example:5432/warehouse"
    config = settings({"TSHOP_STATE_DIR": str(tmp_path), "TSHOP_PG_DSN": dsn})
    assert config.pg_dsn() == dsn
    assert config.pg_dsn(database="airflow") == "postgresql://someone:secret@db.example:5432/airflow"


def test_an_external_dsn_that_is_not_postgresql_is_refused(tmp_path):
    config = settings({"TSHOP_STATE_DIR": str(tmp_path), "TSHOP_PG_DSN": "mysql://x@y/z"})
    with pytest.raises(ConfigError, match="TSHOP_PG_DSN"):
        config.pg_dsn()


def test_the_reports_go_to_the_state_folder_unless_a_url_is_given(tmp_path):
    assert settings({"TSHOP_STATE_DIR": str(tmp_path)}).reports_url == (tmp_path / "reports").as_uri()
    assert settings({"TSHOP_REPORTS_URL": "s3://bucket/reports"}).reports_url == "s3://bucket/reports"
    with pytest.raises(ConfigError, match="TSHOP_REPORTS_URL"):
        _ = settings({"TSHOP_REPORTS_URL": "/srv/reports"}).reports_url


def test_the_landing_zone_is_in_the_state_folder_unless_a_url_is_given(tmp_path):
    assert settings({"TSHOP_STATE_DIR": str(tmp_path)}).landing_url == (tmp_path / "landing").as_uri()
    assert settings({"TSHOP_LANDING_URL": "s3://bucket/landing/"}).landing_url == "s3://bucket/landing"
    with pytest.raises(ConfigError, match="TSHOP_LANDING_URL"):
        _ = settings({"TSHOP_LANDING_URL": "/srv/landing"}).landing_url


def test_the_generator_writes_into_raw_unless_told_the_landing_zone(tmp_path):
    assert settings({"TSHOP_STATE_DIR": str(tmp_path)}).generate_to == "raw"
    assert settings({"TSHOP_GENERATE_TO": "landing"}).generate_to == "landing"
    with pytest.raises(ConfigError, match="TSHOP_GENERATE_TO"):
        _ = settings({"TSHOP_GENERATE_TO": "s3"}).generate_to
