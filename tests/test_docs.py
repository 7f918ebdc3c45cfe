"""The README's configuration table lists every setting: a limit nobody can find is a limit nobody sets."""
import dataclasses
import os

from chat.config import Settings, env_name, flag_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_rows():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return [line for line in f if line.startswith("| `--")]


def test_every_setting_has_a_row_in_the_readme_configuration_table():
    rows = _readme_rows()
    missing = []
    for f in dataclasses.fields(Settings):
        flag, variable = flag_names(f)[0], env_name(f.name)
        if not any(f"`{flag}" in row and f"`{variable}`" in row for row in rows):
            missing.append(f"{flag} ({variable})")
    assert missing == []


def test_every_readme_row_is_a_real_setting():
    known = {env_name(f.name) for f in dataclasses.fields(Settings)}
    documented = {row.split("|")[2].strip().strip("`") for row in _readme_rows()}
    assert documented - known == set()
