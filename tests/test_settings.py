"""Settings come from CONCORD_* variables; the pseudonym key is generated once and kept secret."""

from __future__ import annotations

import stat

import pytest

from concord.pseudonym import mask_id_number, mask_phone, pseudonym
from concord.settings import Settings


def test_defaults_put_all_state_under_home(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home == tmp_path / "var"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'concord.db'}"
    assert not settings.require_services


def test_environment_overrides(tmp_path) -> None:
    settings = Settings.from_env(
        {
            "CONCORD_HOME": str(tmp_path / "h"),
            "CONCORD_DATABASE_URL": "postgresql+psycopg://u@db:5432/concord",
            "CONCORD_REQUIRE_SERVICES": "1",
            "CONCORD_PSEUDONYM_KEY": "k",
        }
    )
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.require_services and settings.pseudonym_key() == b"k"
    assert not (tmp_path / "h").exists()  # reading settings creates nothing


@pytest.mark.parametrize("name", ["CONCORD_OFFLINE_THREADS", "CONCORD_PROGRESS_THRESHOLD"])
@pytest.mark.parametrize("raw", ["abc", "0", "-2", "1.5"])
def test_whole_number_settings_name_the_variable_when_wrong(name, raw) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a positive whole number"):
        Settings.from_env({name: raw})


def test_offline_engine_limits_come_from_settings(tmp_path) -> None:
    import ibis

    from features.store.config import configure_offline_engine

    settings = Settings.from_env(
        {"CONCORD_HOME": str(tmp_path), "CONCORD_OFFLINE_MEMORY_LIMIT": "300MB", "CONCORD_OFFLINE_THREADS": "1"}
    )
    assert settings.offline_memory_limit == "300MB" and settings.offline_threads == 1
    configure_offline_engine(settings)
    limit, threads, spill = (
        ibis.get_backend()
        .raw_sql(
            "select current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory')"
        )
        .fetchall()[0]
    )
    assert limit.endswith("MiB") and float(limit.split()[0]) < 300 and threads == 1
    assert spill == str(tmp_path / "features" / "duckdb-spill")
    with pytest.raises(ValueError, match="CONCORD_OFFLINE_MEMORY_LIMIT='lots'"):
        configure_offline_engine(
            Settings.from_env({"CONCORD_HOME": str(tmp_path), "CONCORD_OFFLINE_MEMORY_LIMIT": "lots"})
        )


def test_generated_key_is_kept_with_owner_only_permissions(tmp_path) -> None:
    settings = Settings.from_env({"CONCORD_HOME": str(tmp_path)})
    first = settings.pseudonym_key()
    assert len(first) == 64
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600
    assert Settings.from_env({"CONCORD_HOME": str(tmp_path)}).pseudonym_key() == first


def test_pseudonyms_are_keyed_and_separated_by_kind() -> None:
    assert pseudonym(b"a", "id", "11010519491231002X") == pseudonym(b"a", "id", "11010519491231002X")
    assert pseudonym(b"a", "id", "11010519491231002X") != pseudonym(b"b", "id", "11010519491231002X")
    assert pseudonym(b"a", "id", "13812345678") != pseudonym(b"a", "phone", "13812345678")


def test_masks_match_the_display_forms() -> None:
    assert mask_id_number("35010219900307001X") == "350102**********1X"
    assert mask_phone("13812345678") == "138****5678"


def test_pseudonyms_are_keyed_blake2b_of_the_identifier() -> None:
    import hashlib

    from concord.pseudonym import _mac_key, pseudonyms

    values = ["11010519491231002X", "", "福建", "13812345678"]
    expected = [hashlib.blake2b(v.encode(), key=_mac_key(b"s", "id"), digest_size=16).hexdigest() for v in values]
    assert pseudonyms(b"s", "id", values) == expected
