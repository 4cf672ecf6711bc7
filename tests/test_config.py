"""The config contract: the shipped file loads, and every mistake names its key and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, shipped_config_data

from mailbot.config import ConfigError, load_config, parse_config


def test_shipped_config_describes_the_flyer() -> None:
    config = load_config(REPO / "config.toml")
    second = config.event_by_number(2)
    assert second is not None and not second.placeholder
    assert "Konzeptentwicklung" in second.title
    assert second.start.isoformat() == "2018-02-22T11:00:00+01:00"
    assert second.end.isoformat() == "2018-02-22T16:15:00+01:00"
    assert second.deadline.date().isoformat() == "2018-02-09"
    assert second.capacity > 0 and second.fee == "kostenlos"
    assert [e.number for e in config.events] == [1, 2, 3, 4]
    assert all(e.placeholder for e in config.events if e.number != 2)
    assert config.current_event.number == 2
    assert "Brüderweg" in config.venue.address
    for address in config.own_addresses:
        assert address.endswith(".example"), address


def _broken(tmp_path: Path, mutate) -> str:
    data = shipped_config_data()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data, tmp_path / "config.toml")
    return str(info.value)


def test_plain_text_refused_for_remote_host(tmp_path: Path) -> None:
    message = _broken(tmp_path, lambda d: d["imap"].update(host="mail.example.org"))
    assert ("imap" in message and "security" in message.lower()) or "loopback" in message


def test_missing_key_named(tmp_path: Path) -> None:
    message = _broken(tmp_path, lambda d: d["events"][1].pop("deadline"))
    assert "events.1.deadline: missing" in message


def test_naive_datetime_refused(tmp_path: Path) -> None:
    from datetime import datetime

    message = _broken(
        tmp_path, lambda d: d["events"][1].update(deadline=datetime(2018, 2, 9, 23, 59))
    )
    assert "events.1.deadline" in message and "offset" in message


def test_unknown_key_and_bad_security(tmp_path: Path) -> None:
    assert "imap.hots: unknown key" in _broken(tmp_path, lambda d: d["imap"].update(hots="x"))
    assert "smtp.security" in _broken(tmp_path, lambda d: d["smtp"].update(security="tls"))


def test_password_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = shipped_config_data()
    del data["imap"]["password"]
    with pytest.raises(ConfigError, match="MAILBOT_IMAP_PASSWORD"):
        parse_config(data, None)
    monkeypatch.setenv("MAILBOT_IMAP_PASSWORD", "from-env")
    assert parse_config(data, None).imap.password == "from-env"


def test_smtp_auth_is_optional_but_paired(tmp_path: Path) -> None:
    assert "smtp.username and smtp.password" in _broken(
        tmp_path, lambda d: d["smtp"].update(username="bot@example.org")
    )


def test_check_command_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "mailbot", "check", "--config", str(REPO / "config.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout
    broken = tmp_path / "config.toml"
    broken.write_text(
        (REPO / "config.toml").read_text(encoding="utf-8").replace("port = 143", "port = 0"),
        encoding="utf-8",
    )
    bad = subprocess.run(
        [sys.executable, "-m", "mailbot", "check", "--config", str(broken)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert "imap.port" in bad.stderr and "Traceback" not in bad.stderr
    garbage = tmp_path / "garbage.toml"
    garbage.write_text("[imap\nhost=", encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, "-m", "mailbot", "check", "--config", str(garbage)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "not valid TOML" in bad.stderr


def test_broken_template_named_by_check(tmp_path: Path) -> None:
    templates = tmp_path / "templates" / "de" / "outcomes"
    templates.mkdir(parents=True)
    (templates / "confirmed.txt.j2").write_text("Hallo {{ item.nmae }}\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text((REPO / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "de/outcomes/confirmed.txt.j2:1" in result.stderr and "nmae" in result.stderr
