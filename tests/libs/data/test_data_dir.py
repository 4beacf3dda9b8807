"""The data folder comes from $TRADEBUS_DATA_DIR or the working directory, never the package's location."""
import pytest

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
    # Wherever the package lives, a working directory without shared/data and no variable finds nothing.
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_data_dir() is None
    with pytest.raises(DataDirError, match=DATA_DIR_ENV):
        data_dir()
    with pytest.raises(DataDirError, match=f"{DATA_DIR_ENV}=.*missing"):
        data_dir({DATA_DIR_ENV: str(tmp_path / "missing")})
