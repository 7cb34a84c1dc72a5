"""The run config file: validated at load time, with the file and the key named."""

import pytest

from energy_assets.settings import SettingsError, load_settings


def write(tmp_path, text: str):
    path = tmp_path / "configs" / "run.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_checked_in_main_config_loads_and_resolves_paths():
    settings = load_settings()
    assert settings.start <= settings.end
    assert settings.data_dir.endswith("data/assets") and settings.data_dir.startswith("/")


def test_relative_paths_resolve_against_the_config_folders_parent(tmp_path):
    settings = load_settings(write(tmp_path, "start: 2024-01-01\nend: 2024-01-02\n"))
    assert settings.data_dir == str(tmp_path / "data" / "assets")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start: 2024-01-02\nend: 2024-01-01\n", "before start"),
        ("start: 2024-01-01\nend: 2024-01-02\nstrat: 1\n", "strat"),
        ("start: 2024-01-01\nend: 2024-01-02\npipeline:\n  contxt_length: 5\n", "contxt_length"),
        ("start: 2024-01-01\nend: 2024-01-02\npipeline:\n  ring_layout: zigzg\n", "ring_layout"),
        ("start: 2024-01-01\nend: 2024-01-02\nsources:\n  mode: Live\n", "sources.mode"),
        ("start: [\n", "not valid YAML"),
        ("start: 2024-13-01\nend: 2024-01-02\n", "start: Input should be a valid date"),
        ("start: 2024-01-01\nend: 2024-01-02\nsources:\n  respondents: [CISO, NOPE]\n",
         "sources.respondents.*NOPE"),
        ("start: 2024-01-01\nend: 2024-01-02\nsources:\n  world: ruggles\n"
         "  realdata_dir: no/such/folder\n", "sources.realdata_dir.*not a folder"),
        ("start: 2024-01-01\nend: 2024-01-02\npipeline:\n  context_length: -5\n",
         "pipeline.context_length"),
        ("start: 2024-01-01\nend: 2024-01-02\npipeline:\n  ring_world_size: 0\n",
         "pipeline.ring_world_size"),
        ("start: 2024-01-01\nend: 2024-01-09\npipeline:\n  val_start_utc: 2024-01-05\n"
         "  test_start_utc: 2024-01-04\n", "val_start_utc .* must be before test_start_utc"),
        ("start: 2024-01-01\nend: 2024-01-09\npipeline:\n  val_start_utc: 2024-02-30\n",
         "pipeline.val_start_utc"),
    ],
)  # fmt: skip
def test_bad_config_fails_at_load_time_naming_the_key(tmp_path, text, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(write(tmp_path, text))


def test_missing_config_says_how_to_pass_one(tmp_path):
    with pytest.raises(SettingsError, match="pass --config or set"):
        load_settings(tmp_path / "nope.yaml")
