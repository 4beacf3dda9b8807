"""The data folder comes from $TRADEBUS_DATA_DIR or the working directory, never from where the
package's files lie; when neither gives one, the error names the setting."""
import importlib.util
import shutil

import pytest

import tradebus.data
from tradebus.data import DATA_DIR_ENV, DataDirError, data_dir, find_data_dir


def test_the_environment_variable_wins(tmp_path):
    assert data_dir({DATA_DIR_ENV: str(tmp_path)}, start=tmp_path / "elsewhere") == tmp_path


def test_shared_data_is_found_from_the_working_directory_up(tmp_path, monkeypatch):
    (tmp_path / "shared" / "data").mkdir(parents=True)
    checkout = tmp_path / "checkout" / "sub"
    checkout.mkdir(parents=True)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(checkout)
    assert data_dir() == tmp_path / "shared" / "data"


def test_an_installed_package_with_no_setting_fails_naming_the_setting(tmp_path, monkeypatch):
    # tradebus/data/__init__.py as pip lays it out in site-packages
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "tradebus" / "data").mkdir(parents=True)
    shutil.copy(tradebus.data.__file__, site / "tradebus" / "data" / "__init__.py")
    spec = importlib.util.spec_from_file_location("installed_data", site / "tradebus" / "data" / "__init__.py")
    installed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installed)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert installed.find_data_dir() is None and find_data_dir() is None
    with pytest.raises(installed.DataDirError, match=DATA_DIR_ENV):
        installed.data_dir()
    with pytest.raises(DataDirError, match=f"{DATA_DIR_ENV}=.*missing"):
        data_dir({DATA_DIR_ENV: str(tmp_path / "missing")})
