"""The settings object: environment parsing, errors, and the README documenting every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import Settings, SettingsError, check_paths, documented_settings
from tests.conftest import REPO


def test_defaults_are_embedded():
    s = Settings.from_env({})
    assert s.is_embedded
    assert s.resolved_database_url.startswith("sqlite:///") and s.resolved_database_url.endswith("hybridgen.sqlite")
    assert s.resolved_broker_url.startswith("sqla+sqlite:///")


def test_env_values_are_typed():
    s = Settings.from_env({
        "HYBRIDGEN_CHUNK_SIZE": "16",
        "HYBRIDGEN_TEMPERATURE": "0.7",
        "HYBRIDGEN_DATA_DIR": "/tmp/x",
        "HYBRIDGEN_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "PATH": "/bin",
    })
    assert s.chunk_size == 16 and s.temperature == 0.7 and s.data_dir == Path("/tmp/x")
    assert not s.is_embedded and s.resolved_database_url == "postgresql+psycopg://u@h/db"


def test_unknown_setting_is_an_error_naming_it():
    with pytest.raises(SettingsError, match="unknown setting HYBRIDGEN_CHUNKSIZE"):
        Settings.from_env({"HYBRIDGEN_CHUNKSIZE": "3"})


def test_unparsable_value_names_variable_and_type():
    with pytest.raises(SettingsError, match=r"HYBRIDGEN_CHUNK_SIZE='eight' is not a valid int"):
        Settings.from_env({"HYBRIDGEN_CHUNK_SIZE": "eight"})


def test_readme_documents_every_setting():
    readme = (REPO / "README.md").read_text()
    missing = [name for name, _, _ in documented_settings() if f"`{name}`" not in readme]
    assert not missing, f"README.md does not document: {missing}"


@pytest.mark.parametrize("env, message", [
    ({"HYBRIDGEN_SANDBOX_ISOLATION": "off"}, "HYBRIDGEN_SANDBOX_ISOLATION='off'; expected bwrap"),
    ({"HYBRIDGEN_SANDBOX_DISK_MB": "0"}, "HYBRIDGEN_SANDBOX_DISK_MB=0 must be at least 1"),
    ({"HYBRIDGEN_SANDBOX_TIMEOUT_S": "-1"}, "HYBRIDGEN_SANDBOX_TIMEOUT_S=-1.0 must be > 0"),
    ({"HYBRIDGEN_KERNELS": "cuda"}, "HYBRIDGEN_KERNELS='cuda'; expected one of auto, torch, triton"),
])
def test_sandbox_and_kernel_settings_are_checked(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_a_misspelt_name_gets_the_nearest_one_and_no_list():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"HYBRIDGEN_DATABSE_URL": "x"})
    assert str(info.value) == "unknown setting HYBRIDGEN_DATABSE_URL; did you mean HYBRIDGEN_DATABASE_URL?"
    with pytest.raises(SettingsError, match="expected one of these settings: HYBRIDGEN_ALERT_MIN_ITEMS, "
                                            "HYBRIDGEN_ALERT_THRESHOLDS, HYBRIDGEN_ALLOWED_HOSTS, "):
        Settings.from_env({"HYBRIDGEN_ZZZ": "x"})  # nothing near: then the list helps


@pytest.mark.parametrize("env, message", [
    ({"HYBRIDGEN_VALIDATORS_DISABLED": "contradiction, sandbox_test"}, "'sandbox_test', which is no validator; "
                                                                       "did you mean sandbox_tests?"),
    ({"HYBRIDGEN_DEVICE": "cuda:x"}, "HYBRIDGEN_DEVICE='cuda:x'; expected auto, cpu, cuda or cuda:N"),
    ({"HYBRIDGEN_MAX_NEW_TOKENS": "0"}, "HYBRIDGEN_MAX_NEW_TOKENS=0 must be from 1 to 32768"),
    ({"HYBRIDGEN_SERVE_PORT": "70000"}, "HYBRIDGEN_SERVE_PORT=70000 must be from 1 to 65535"),
    ({"HYBRIDGEN_PROGRESS_INTERVAL_S": "-1"}, "HYBRIDGEN_PROGRESS_INTERVAL_S=-1.0 must be at least 0.0"),
    ({"HYBRIDGEN_REFINER_OVERRIDES": "article:threshold=2"}, "article threshold=2 must be in (0, 1]"),
])
def test_values_are_checked_against_what_is_allowed(env, message):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert message in str(info.value)


def test_good_values_pass_and_disabled_validators_are_names():
    s = Settings.from_env({"HYBRIDGEN_VALIDATORS_DISABLED": " contradiction,degeneration ", "HYBRIDGEN_DEVICE": "cuda:1",
                           "HYBRIDGEN_DTYPE": "bf16", "HYBRIDGEN_REFINER_OVERRIDES": "code:drafts=3;article:sub=0"})
    assert s.disabled_validators == {"contradiction", "degeneration"}


def test_paths_are_checked(tmp_path):
    check_paths(Settings())  # the default data folder need not exist yet
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(SettingsError, match="HYBRIDGEN_DATA_DIR=.* is a file; expected a folder"):
        check_paths(Settings(data_dir=a_file))
    with pytest.raises(SettingsError, match="HYBRIDGEN_CACHE_DIR=.* is a file; expected a folder"):
        check_paths(Settings(data_dir=tmp_path, cache_dir=a_file))
    with pytest.raises(SettingsError, match="does not exist; expected an existing folder"):
        check_paths(Settings(data_dir=tmp_path / "nope"))
    check_paths(Settings(data_dir=tmp_path / "nope"), create_data_dir=True)
