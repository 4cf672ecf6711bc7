"""`mailbot demo` runs the real pipeline on the shipped sample mails and tells the story."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from mailbot.demo.run import demo_config


def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    table = result.stdout
    lines = {line.split()[0]: line for line in table.splitlines() if ".eml " in line}
    assert len(lines) == 14
    assert "confirmed" in lines["01-anmeldung-formular.eml"]
    assert "waitlisted" in lines["04-anmeldung-iso-8859-1.eml"]
    assert "already_registered" in lines["06-doppelte-anmeldung.eml"]
    assert "autoreply" in lines["07-abwesenheitsnotiz.eml"]
    assert "ignored" in lines["09-newsletter.eml"]
    assert "cancelled" in lines["10-abmeldung.eml"]
    assert "bounce" in lines["11-unzustellbar.eml"]
    assert "late" in lines["14-anmeldung-nach-anmeldeschluss.eml"]
    assert "replies sent" in table
    # The promotion mail to the first person on the waiting list went out.
    promoted = [line for line in table.splitlines() if line.startswith("  to b.huelsmann@")]
    assert len(promoted) == 2 and "nachgerückt" in promoted[1], table


def test_the_demo_run_where_the_readme_says_finds_the_templates_beside_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by running the README's first command in a fresh clone: `mailbot demo` in the
    repository's root, with config.toml and templates/ beside it and the package installed
    with `pip install .`, looked for templates/ in its own temporary folder and stopped."""
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    monkeypatch.chdir(tmp_path)
    workdir = tmp_path / "demo-work"
    workdir.mkdir()
    config = demo_config(Path("config.toml"), 1143, 1025, "secret", workdir)
    assert config.templates_dir == (tmp_path / "templates").resolve()
