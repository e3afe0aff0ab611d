"""The deployment files run real commands and ship every package the code needs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from run import cli

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


def run_args(command: str) -> list[str]:
    """The arguments after ``run.py`` in a command line."""
    words = shlex.split(command)
    return words[words.index("run.py") + 1:]


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_each_systemd_unit_runs_a_real_command_and_stops_with_sigterm(unit):
    text = unit.read_text()
    assert "KillSignal=SIGTERM" in text and "Restart=always" in text and "EnvironmentFile=" in text
    for line in re.findall(r"^ExecStart(?:Pre)?=(.*)$", text, re.MULTILINE):
        args = [str(ROOT / "settings.example.toml") if a == "/etc/elexon/settings.toml" else a for a in run_args(line)]
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, f"{unit.name}: `{line}` is not a valid command: {result.output}"


def test_the_dockerfile_ships_every_package_and_runs_the_scheduler():
    text = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \1$", text, re.MULTILINE))
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"}
    assert packages | {"sql", "sheets_templates"} <= copied
    assert 'ENTRYPOINT ["python", "run.py"]' in text and 'CMD ["schedule"]' in text
    assert "USER elexon" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"settings.toml", ".env", "*.json", "data", ".venv"} <= set(ignored)  # no secrets or data in the image
