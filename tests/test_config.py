"""The config contract: the shipped file loads, and every mistake names its key and the fix."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import REPO, shipped_config_data, shipped_config_text

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
    assert "events[1] (werkstatt-2).deadline: missing" in message


def test_naive_datetime_refused(tmp_path: Path) -> None:
    from datetime import datetime

    message = _broken(
        tmp_path, lambda d: d["events"][1].update(deadline=datetime(2018, 2, 9, 23, 59))
    )
    assert "events[1] (werkstatt-2).deadline" in message and "offset" in message


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
        shipped_config_text().replace("port = 143", "port = 0"),
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


@pytest.mark.parametrize(
    "command", [["status"], ["check"], ["review", "3"], ["parse", "a.eml"], ["demo"]]
)
def test_shared_options_work_before_and_after_the_command(command: list[str]) -> None:
    """`mailbot --config X COMMAND` as `--help` shows it, `COMMAND --config X` as the README does."""
    from mailbot.cli import build_parser
    from mailbot.config import DEFAULT_CONFIG_PATH

    parse = build_parser().parse_args
    assert parse(command).config == DEFAULT_CONFIG_PATH and parse(command).verbose is False
    assert parse(["--config", "/etc/a.toml", *command]).config == Path("/etc/a.toml")
    assert parse([*command, "--config", "/etc/a.toml"]).config == Path("/etc/a.toml")
    both = ["--config", "/etc/a.toml", *command, "--config", "/etc/b.toml"]
    assert parse(both).config == Path("/etc/b.toml")  # the later one wins
    assert parse(["-v", *command]).verbose is True
    assert parse([*command, "--verbose"]).verbose is True


def test_config_before_the_command_is_used(tmp_path: Path) -> None:
    """No ./config.toml here: only the file given before the command can make `check` pass."""
    ok = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(REPO / "config.toml"), "check"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{REPO / 'config.toml'}: OK")


def test_broken_template_named_by_check(tmp_path: Path) -> None:
    templates = tmp_path / "templates" / "de" / "outcomes"
    templates.mkdir(parents=True)
    (templates / "confirmed.txt.j2").write_text("Hallo {{ item.nmae }}\n", encoding="utf-8")
    config = tmp_path / "config.toml"
    # The shipped file as it is: `templates = "templates"`, relative to the config file.
    config.write_text((REPO / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "de/outcomes/confirmed.txt.j2:1" in result.stderr and "nmae" in result.stderr


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["events"][1].update(capacity="30"), "events[1] (werkstatt-2).capacity"),
        (lambda d: d["imap"].update(port="143"), "imap.port"),
        (
            lambda d: d["database"].update(url="notaurl"),
            "database.url: 'notaurl' is not a database URL",
        ),
        (lambda d: d["mailbot"].update(templates="nonexistent"), "mailbot.templates: folder"),
        (
            lambda d: d["mailbot"].update(timezone="Mars/Olympus"),
            "mailbot.timezone: unknown time zone",
        ),
        (lambda d: d["digest"].update(time="25:00"), "digest.time"),
        (lambda d: d.update(events=[]), "events: List should have at least 1 item"),
        (
            lambda d: d["events"][1].update(deadline=d["events"][1]["end"].replace(year=2019)),
            "deadline must not be after the end",
        ),
    ],
)
def test_more_mistakes_named(tmp_path: Path, mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    assert expected in _broken(tmp_path, mutate)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "digest_to",
            ["orga@bürgerstiftung.example"],
            "organiser.digest_to[0]: 'orga@bürgerstiftung.example': mailbot sends only to "
            "ASCII addresses; write the domain in its ASCII form: "
            "'orga@xn--brgerstiftung-wob.example'",
        ),
        ("address", "anmeldung@ils", "organiser.address: 'anmeldung@ils' is not a plain"),
        ("address", "anmeldung@ils.example\n", "organiser.address: "),
        ("reply_to", "jürgen@example.org", "organiser.reply_to: 'jürgen@example.org': mailbot"),
        ("reply_to", "Team <team@example.org>", "organiser.reply_to: "),
        (
            "other_addresses",
            ["info@example.org", "info@straße.example"],
            "organiser.other_addresses[1]: ",
        ),
        ("digest_to", ["a b@example.org"], "organiser.digest_to[0]: 'a b@example.org' is not"),
    ],
)
def test_every_organiser_address_is_checked_as_replies_check_theirs(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    """Found by review: digest_to and other_addresses were not checked at all, and `address`
    only had to hold an "@". An address with an umlaut passed `mailbot check`, and the first
    mail to it stopped every later reply from being sent (tests/test_send_unsendable.py)."""
    message = _broken(tmp_path, lambda d: d["organiser"].update({key: value}))
    assert expected in message and "\n" not in message.strip(), message


def test_an_address_with_an_umlaut_fails_check_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        (REPO / "config.toml")
        .read_text(encoding="utf-8")
        .replace('"organisation@ils-forschung.example"', '"orga@bürgerstiftung.example"'),
        encoding="utf-8",
    )
    (tmp_path / "templates").symlink_to(REPO / "templates")
    result = subprocess.run(
        [sys.executable, "-m", "mailbot", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "organiser.digest_to[0]" in result.stderr and "xn--brgerstiftung" in result.stderr


def test_only_the_contract_keys_are_needed(tmp_path: Path) -> None:
    data = shipped_config_data()
    del data["venue"], data["digest"], data["privacy"]
    data["mailbot"] = {"poll_seconds": 30, "timezone": "Europe/Berlin"}
    data["organiser"] = {k: data["organiser"][k] for k in ("name", "address", "digest_to")}
    data["events"] = [
        {k: e[k] for k in ("id", "number", "title", "start", "end", "deadline", "capacity")}
        for e in data["events"]
    ]
    config = parse_config(data, tmp_path / "config.toml")
    assert config.templates_dir.is_dir()


def test_relative_sqlite_path_is_anchored_at_the_config_file(tmp_path: Path) -> None:
    config = parse_config(shipped_config_data(), tmp_path / "etc" / "config.toml")
    assert config.database_url == f"sqlite:///{tmp_path / 'etc' / 'mailbot.sqlite3'}"


@pytest.mark.parametrize(
    "url", ["sqlite:///", "sqlite:///a b.db?mode=ro", "sqlite:////abs/x.db", "sqlite:///%zz\n"]
)
def test_a_sqlite_url_is_taken_without_sqlalchemy_and_sqlalchemy_reads_it_too(
    tmp_path: Path, url: str
) -> None:
    """The config accepts any "sqlite:///…" without importing SQLAlchemy (so `poll --once`
    forks its read-ahead sooner); SQLAlchemy's own parser takes every such string as well."""
    from sqlalchemy.engine import make_url

    data = shipped_config_data()
    data["database"] = {"url": url}
    parse_config(data, tmp_path / "config.toml")
    assert make_url(url).get_backend_name() == "sqlite"


def test_loading_the_config_imports_no_sqlalchemy(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom mailbot.config import load_config\n"
        f"load_config({str(REPO / 'config.toml')!r})\n"
        "print('sqlalchemy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_a_mail_naming_no_workshop_means_the_next_real_one_not_yet_over(tmp_path: Path) -> None:
    """Once the 3rd workshop is announced and the 2nd is over, "ich melde mich an" means the
    3rd; before the 2nd ends (even past its deadline) it means the 2nd."""
    data = shipped_config_data()
    data["events"][2]["placeholder"] = False
    config = parse_config(data, tmp_path / "config.toml")
    second, third = config.event_by_number(2), config.event_by_number(3)
    assert second is not None and third is not None
    assert config.current_event_at(second.deadline + timedelta(days=1)).number == 2
    assert config.current_event_at(second.end - timedelta(minutes=1)).number == 2
    assert config.current_event_at(second.end).number == 3
    assert config.current_event_at(third.end + timedelta(days=1)).number == 3  # the last real
    assert config.current_event_at(None).number == 2
    assert config.current_event.number == 2
    # Placeholders are never the default: with the 3rd a placeholder, the 2nd stays it.
    shipped = parse_config(shipped_config_data(), tmp_path / "config.toml")
    assert shipped.current_event_at(third.end + timedelta(days=1)).number == 2
