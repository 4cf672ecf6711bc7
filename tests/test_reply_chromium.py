"""The HTML part in a real browser engine: headless Chromium (Debian's `chromium`, installed by
.ci/run) lays it out, and the text it renders must show the title, the date and the venue.

The rendered text is `document.body.innerText`, which follows the layout (hidden text is not in
it). A one-line script appended to a *copy* of the HTML hands it to `--dump-dom`; the mail itself
carries no script. A missing Chromium fails the test rather than skipping it, like Dovecot.
"""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import make_config

from mailbot.reply.message import build_message
from mailbot.reply.samples import SAMPLE_NOW, sample_request

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXPOSE = (
    "<script>document.documentElement.setAttribute("
    "'data-rendered', document.body.innerText)</script>"
)


class _Rendered(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.text = dict(attrs).get("data-rendered") or ""


def rendered_text(html: str, tmp_path: Path) -> str:
    if not CHROMIUM.exists():
        pytest.fail("headless Chromium is missing: apt-get install chromium", pytrace=False)
    page = tmp_path / "reply.html"
    page.write_text(html.replace("</body>", EXPOSE + "</body>"), encoding="utf-8")
    result = subprocess.run(
        [
            str(CHROMIUM),
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    parser = _Rendered()
    parser.feed(result.stdout)
    return parser.text


@pytest.mark.parametrize(
    ("language", "date"),
    [
        ("de", "Donnerstag, 22. Februar 2018, 11:00–16:15 Uhr"),
        ("en", "Thursday, 22 February 2018, 11:00 am – 4:15 pm"),
    ],
)
def test_confirmation_renders_title_date_and_venue(
    tmp_path: Path, language: str, date: str
) -> None:
    config = make_config(tmp_path)
    message = build_message(sample_request("confirmed", language, config), config, SAMPLE_NOW)
    html = str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]
    assert "<script" not in html
    text = rendered_text(html, tmp_path)
    event = config.current_event
    assert event.title in text
    assert date in text
    assert config.venue.name in text and config.venue.address in text
    assert "Erika Mustermann" in text and config.organiser.contact_name in text  # type: ignore[operator]
