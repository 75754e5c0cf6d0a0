"""The settings object: environment parsing, errors, and the README documenting every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import Settings, SettingsError, documented_settings
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
