"""The shortcuts that make composing a reply cheaper (issue 7) show no stale data.

Each is held against the slow way it replaces: the cached base context against a fresh
build, also after a config reload and after a caller changed what it was given; the
template snapshot's shortcuts against a plain sandbox and across a template reload. The
warm-up before a rush's first replies compiles what they need and never stops the poll.
"""

from __future__ import annotations

import copy
import random
import shutil
import string
import subprocess
import sys
from email.utils import parseaddr
from pathlib import Path

import pytest
from helpers import REPO, make_config
from jinja2 import StrictUndefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from mailbot.config import Config
from mailbot.decide.rules import Outcome, ReplyKind
from mailbot.pipeline import Pipeline
from mailbot.reply import templating
from mailbot.reply.compose import _DOT_ATOM
from mailbot.reply.context import base_context, event_context
from mailbot.reply.render import (
    ReplyItem,
    ReplyRequest,
    TemplateProblem,
    environment,
    render_bodies,
    trial_templates,
)
from mailbot.reply.samples import warm_up
from mailbot.reply.templating import CompiledTemplates, SnapshotEnvironment, load_environment
from mailbot.store.db import Store


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return make_config(tmp_path_factory.mktemp("speed"))


def test_base_context_equals_a_fresh_build(config: Config) -> None:
    for language in ("de", "en"):
        context = base_context(config, language)
        assert context["language"] == language
        assert context["events"] == [event_context(e, config, language) for e in config.events]
        assert context["venue"] == config.venue.model_dump()
        organiser = config.organiser.model_dump()
        assert context["organiser"] == {
            **organiser,
            "contact": organiser["contact_name"] or organiser["name"],
        }


def test_base_context_is_a_copy_callers_may_change(config: Config) -> None:
    """reply_context adds its keys, and a sandboxed template may change a dict or a list: none
    of it may reach the next reply."""
    first = base_context(config, "de")
    pristine = copy.deepcopy(first)
    first["extra"] = 1
    first["organiser"]["name"] = "changed"
    first["organiser"]["digest_to"].append("x@y.example")
    first["venue"]["name"] = "changed"
    first["events"][0]["title"] = "changed"
    first["events"][1]["programme"].append("99:00 changed")
    first["events"].pop()
    assert base_context(config, "de") == pristine


def test_base_context_follows_a_new_config(config: Config) -> None:
    before = base_context(config, "de")
    venue = config.venue.model_copy(update={"name": "Anderer Ort"})
    events = [e.model_copy(update={"title": f"Neu: {e.title}"}) for e in config.events]
    reloaded = config.model_copy(update={"venue": venue, "events": events})
    after = base_context(reloaded, "de")
    assert after["venue"]["name"] == "Anderer Ort"
    assert all(e["title"].startswith("Neu: ") for e in after["events"])
    assert base_context(config, "de") == before


def test_snapshot_renders_like_the_plain_sandbox() -> None:
    """`d.key` on a dict, a key shadowed by a dict method, a nested dict, a string method, and
    jinja's globals (now a plain dict per template)."""
    source = (
        "{{ d.a }}|{{ d.b.c }}|{{ d.items() | list | length }}|{{ d.keys is callable }}"
        "|{{ d.get('a') }}|{{ s.upper() }}|{{ d['items'] }}|{{ n.a }}"
        "|{{ range(3) | list }}|{{ dict(x=1) }}|{% set ns = namespace(v=2) %}{{ ns.v }}"
        "|{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}|{{ lipsum is callable }}"
        "|{% set j = joiner('+') %}{{ j() }}a{{ j() }}b"
    )
    data = {
        "d": {"a": 1, "b": {"c": "<2>"}, "items": "shadowed", "keys": "k"},
        "s": "text",
        "n": type("Obj", (), {"a": "attr"})(),
    }
    options = {"undefined": StrictUndefined, "autoescape": True}
    fast = SnapshotEnvironment(**options).from_string(source).render(data)
    slow = SandboxedEnvironment(**options).from_string(source).render(data)
    assert fast == slow
    for env in (SnapshotEnvironment(**options), SandboxedEnvironment(**options)):
        with pytest.raises(UndefinedError):
            env.from_string("{{ d.missing }}").render(data)


def test_edited_templates_show_only_after_a_reload(tmp_path: Path) -> None:
    """Compiled templates are kept per snapshot: an edit is seen once the templates are read
    anew (`trial_templates`, as a reload does), and not before."""
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    base = make_config(tmp_path)
    config = base.model_copy(
        update={"mailbot": base.mailbot.model_copy(update={"templates": str(folder)})}
    )
    person = ("Anna Beispiel", "anna@example.org")
    request = ReplyRequest(
        kind=ReplyKind.OUTCOMES,
        language="de",
        recipients=[person],
        items=[ReplyItem(*person, "werkstatt-2", Outcome.CONFIRMED)],
    )
    with trial_templates(config):
        before, _ = render_bodies(request, config)
    outcome = folder / "de" / "outcomes" / "confirmed.txt.j2"
    outcome.write_text("Neu bestätigt: {{ item.who }}\n", encoding="utf-8")
    assert render_bodies(request, config)[0] == before
    with trial_templates(config):
        after, _ = render_bodies(request, config)
    assert "Neu bestätigt: Anna Beispiel" in after and after != before
    assert render_bodies(request, config)[0] == after


def _snapshot(folder: Path, cache: CompiledTemplates, compiled: list[str]) -> SnapshotEnvironment:
    """An environment over `folder` alone that notes which templates it had to compile."""
    env = load_environment(folder, folder / "no-defaults", cache)
    compile_source = env.compile

    def noting(source: str, name: str | None = None, *args: object, **kw: object) -> object:
        compiled.append(name or "?")
        return compile_source(source, name, *args, **kw)  # type: ignore[arg-type]

    env.compile = noting  # type: ignore[method-assign]
    return env


def test_compiled_templates_come_from_the_cache_until_the_source_changes(tmp_path: Path) -> None:
    """A second process (here: a second snapshot) loads the code the first one compiled; an
    edited template is compiled afresh and renders the new text."""
    folder = tmp_path / "templates"
    folder.mkdir()
    page = folder / "page.html.j2"
    page.write_text("<p>{{ name }}</p>\n", encoding="utf-8")
    cache = CompiledTemplates(str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    compiled: list[str] = []
    first = _snapshot(folder, cache, compiled).template("page.html.j2").render(name="<Ann>")
    assert first == "<p>&lt;Ann&gt;</p>\n" and compiled == ["page.html.j2"]
    assert len(list((tmp_path / "cache").iterdir())) == 1
    again = _snapshot(folder, cache, compiled).template("page.html.j2").render(name="<Ann>")
    assert again == first and compiled == ["page.html.j2"]  # not compiled a second time
    page.write_text("<h1>{{ name }}</h1>\n", encoding="utf-8")
    edited = _snapshot(folder, cache, compiled).template("page.html.j2").render(name="<Ann>")
    assert edited == "<h1>&lt;Ann&gt;</h1>\n" and compiled == ["page.html.j2"] * 2


def test_code_compiled_under_other_options_is_not_taken(tmp_path: Path) -> None:
    """Same name, file and source, but no autoescaping: jinja2's own key would hand this
    environment the escaping code; ours compiles its own."""
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "page.html.j2").write_text("{{ name }}", encoding="utf-8")
    (tmp_path / "cache").mkdir()
    cache = CompiledTemplates(str(tmp_path / "cache"))
    escaping = _snapshot(folder, cache, [])
    assert escaping.template("page.html.j2").render(name="<b>") == "&lt;b&gt;"
    plain = _snapshot(folder, cache, [])
    plain.autoescape = False
    assert plain.template("page.html.j2").render(name="<b>") == "<b>"


def test_code_compiled_by_another_jinja2_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgraded jinja2 (its compiler fixed, say) compiles the unchanged template anew."""
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "a.txt.j2").write_text("Hallo {{ name }}", encoding="utf-8")
    (tmp_path / "cache").mkdir()
    cache = CompiledTemplates(str(tmp_path / "cache"))
    compiled: list[str] = []
    _snapshot(folder, cache, compiled).template("a.txt.j2")
    _snapshot(folder, cache, compiled).template("a.txt.j2")
    assert compiled == ["a.txt.j2"]
    monkeypatch.setattr(templating.jinja2, "__version__", "99.0.0")
    assert _snapshot(folder, cache, compiled).template("a.txt.j2").render(name="A") == "Hallo A"
    assert compiled == ["a.txt.j2"] * 2


def test_the_replies_environment_has_the_cache(config: Config) -> None:
    assert isinstance(environment(config).bytecode_cache, CompiledTemplates)


def test_the_poll_reaches_its_first_fetch_without_jinja2_or_icalendar(tmp_path: Path) -> None:
    """They come with the warm-up, while the read-ahead helper reads (pipeline.py)."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from helpers import make_config
from mailbot.cli import build_parser
from mailbot.pipeline import Pipeline
from mailbot.store.db import Store
build_parser()
config = make_config(Path({str(tmp_path)!r}))
Pipeline(config, Store(config.database_url))
print(sorted(m for m in ("jinja2", "icalendar", "mailbot.parse") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]


def test_a_broken_cache_never_breaks_a_reply(tmp_path: Path) -> None:
    """A cache file cut short or overwritten with garbage, and a cache directory that is gone:
    the template is compiled as without a cache, and renders."""
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "a.txt.j2").write_text("Hallo {{ name }}", encoding="utf-8")
    directory = tmp_path / "cache"
    directory.mkdir()
    cache = CompiledTemplates(str(directory))
    assert _snapshot(folder, cache, []).template("a.txt.j2").render(name="Ann") == "Hallo Ann"
    (written,) = directory.iterdir()
    for garbage in (written.read_bytes()[:20], b"\x00" * 64, b""):
        written.write_bytes(garbage)
        compiled: list[str] = []
        env = _snapshot(folder, cache, compiled)
        assert env.template("a.txt.j2").render(name="Ann") == "Hallo Ann"
        assert compiled == ["a.txt.j2"]
    shutil.rmtree(directory)
    assert _snapshot(folder, cache, []).template("a.txt.j2").render(name="Ann") == "Hallo Ann"


def test_plain_addresses_skip_parseaddr_without_changing_the_answer() -> None:
    """`_answerable` takes a dot-atom address as it is; parseaddr must agree for every one."""
    atext = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-."
    rng = random.Random(7)
    checked = 0
    for _ in range(20_000):
        local = "".join(rng.choice(atext) for _ in range(rng.randint(1, 12)))
        domain = "".join(rng.choice(string.ascii_letters + "-.0") for _ in range(rng.randint(1, 9)))
        address = f"{local}@{domain}"
        if _DOT_ATOM.fullmatch(address):
            checked += 1
            assert parseaddr(address)[1] == address
    assert checked > 10_000
    for odd in ('"a b"@example.org', "a@b@example.org", "a(x)@example.org", "a..b@example.org"):
        assert not _DOT_ATOM.fullmatch(odd)


def test_warming_up_compiles_every_reply_template_a_rush_needs(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with trial_templates(config):  # a snapshot of its own: nothing compiled yet
        warm_up(config)
        compiled = set(environment(config).loaded)
    for language in ("de", "en"):
        assert {f"{language}/reply.txt.j2", f"{language}/reply.html.j2"} <= compiled
        assert {f"{language}/outcomes/{o.value}.txt.j2" for o in Outcome} <= compiled


def test_a_broken_template_fails_the_mails_that_need_it_not_the_warm_up(tmp_path: Path) -> None:
    """The warm-up is only a speed-up: a template an admin broke must not stop the poll there;
    the mails that need it fail in their own savepoints and say why (tests/test_faults.py)."""
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    (folder / "de" / "outcomes" / "confirmed.txt.j2").write_text("{% if %}\n", encoding="utf-8")
    base = make_config(tmp_path)
    config = base.model_copy(
        update={"mailbot": base.mailbot.model_copy(update={"templates": str(folder)})}
    )
    with trial_templates(config), pytest.raises(TemplateProblem):
        warm_up(config)
    store = Store(config.database_url)
    try:
        with trial_templates(config):
            Pipeline(config, store)._warm_up()  # logs, does not raise
    finally:
        store.close()
