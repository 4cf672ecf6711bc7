"""The jinja2 side of rendering: the sandbox over a snapshot of the templates, and its cache.

A module of its own so that jinja2 is imported only when a template is first needed: a poll
that starts a rush imports it while its read-ahead helper parses the first mails, not on the
way to its first fetch (mailbot/pipeline.py, `_warm_up`).

Compiling a template (jinja2 parses it, writes Python source and compiles that) cost 5-10 ms
each, 0.15-0.2 s for the two dozen a poll warms up, in every process that renders. The
compiled code is kept in a bytecode cache on disk (`CompiledTemplates`), keyed by the
template's name and file, the versions of jinja2 and Python and the environment's options,
and checked against the template's source, so an admin's edit or an upgrade is compiled
afresh and an unchanged template is loaded in well under a millisecond.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import Environment, FunctionLoader, StrictUndefined, Template
from jinja2.bccache import Bucket, FileSystemBytecodeCache
from jinja2.sandbox import SandboxedEnvironment

log = logging.getLogger(__name__)

_DICT_ATTRIBUTES = frozenset(dir(dict))
CACHE_PATTERN = "mailbot-%s.cache"


class SnapshotEnvironment(SandboxedEnvironment):
    """The sandbox over one snapshot of the templates, with three shortcuts that change nothing
    a template sees:

    * `item.text` on a plain dict returns the key at once. The sandbox first asks for the
      attribute and falls back to the key only after an AttributeError; for a key that is no
      attribute of `dict` that always ends the same way, only slower (about 50 µs of the
      250 µs the three templates of a reply take to render).
    * `template(name)` keeps each compiled template for the life of the snapshot (a reload is
      a new snapshot), without jinja's weak-reference keyed, locked cache lookup (about 10 µs
      a reply).
    * A template's globals are one plain dict, not jinja's ChainMap over the environment's:
      every render copies them into a new context, key by key through the ChainMap's Python
      code (about 40 µs a reply). Nothing changes an environment's globals once templates are
      loaded (jinja asks for that anyway), so every template sees the same names.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.loaded: dict[str, Template] = {}

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}

    def template(self, name: str) -> Template:
        found = self.loaded.get(name)
        if found is None:
            found = self.loaded[name] = self.get_template(name)
        return found


class CompiledTemplates(FileSystemBytecodeCache):
    """jinja2's bytecode cache on disk, made safe to share and unable to break a reply.

    * The key covers the versions of jinja2 and Python, the environment's class, its
      options and the names of its filters and tests, not only the template's name and file
      as jinja2's own key does: code compiled by another jinja2 (an upgrade that fixed its
      compiler, say) or under other options (another delimiter, autoescaping, whitespace
      control) is never taken for this environment's.
    * Reading or writing the cache may fail (a full or read-only disk, a file cut short):
      the template is then compiled as without a cache, and one line at DEBUG says why.
    """

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        basis = "\x00".join((name, filename or "", _options_of(environment, name)))
        key = hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest()
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception as exc:  # unreadable or corrupt: compile instead
            log.debug("template cache %s not read: %s", bucket.key[:12], exc)
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except Exception as exc:  # the compiled template is used all the same
            log.debug("template cache %s not written: %s", bucket.key[:12], exc)


def _options_of(environment: Environment, name: str) -> str:
    """What, besides the source, decides the code jinja2 compiles a template to."""
    autoescape = environment.autoescape
    return repr(
        (
            jinja2.__version__,
            sys.implementation.cache_tag,
            f"{type(environment).__module__}.{type(environment).__qualname__}",
            environment.block_start_string,
            environment.block_end_string,
            environment.variable_start_string,
            environment.variable_end_string,
            environment.comment_start_string,
            environment.comment_end_string,
            environment.line_statement_prefix,
            environment.line_comment_prefix,
            environment.trim_blocks,
            environment.lstrip_blocks,
            environment.newline_sequence,
            environment.keep_trailing_newline,
            environment.optimized,
            bool(autoescape(name) if callable(autoescape) else autoescape),
            sorted(environment.extensions),
            environment.is_async,
            environment.finalize is not None,
            str(getattr(environment.finalize, "jinja_pass_arg", "")),
            sorted(_callables(environment.filters)),
            sorted(_callables(environment.tests)),
        )
    )


def _callables(found: dict[str, Any]) -> list[tuple[str, str]]:
    """Filter or test names with what jinja2 passes them first (`@pass_context` and the
    like, marked in `jinja_pass_arg`): both go into the compiled code."""
    return [(name, str(getattr(func, "jinja_pass_arg", ""))) for name, func in found.items()]


def template_cache() -> CompiledTemplates | None:
    """The cache in jinja2's own per-user directory under the system's temporary directory
    (created with mode 0700 and refused if another user owns it), or none when there is no
    such directory to be had: rendering works the same, only each process compiles."""
    try:
        return CompiledTemplates(pattern=CACHE_PATTERN)
    except (OSError, RuntimeError) as exc:
        log.debug("no template cache: %s", exc)
        return None


def load_environment(
    templates_dir: Path, defaults_dir: Path, cache: CompiledTemplates | None = None
) -> SnapshotEnvironment:
    """A sandboxed environment over a snapshot of the template files, read now.

    A snapshot, not a live folder: an admin's half-finished edit must not reach participants.
    `render.trial_templates` swaps in a new snapshot only once every reply renders with it.
    """
    sources: dict[str, tuple[str, str]] = {}
    for base in (defaults_dir, templates_dir):  # the admin's files override
        if base.is_dir():
            for path in sorted(base.rglob("*.j2")):
                name = path.relative_to(base).as_posix()
                sources[name] = (path.read_text(encoding="utf-8"), str(path))

    def load(name: str) -> tuple[str, str, Callable[[], bool]] | None:
        found = sources.get(name)
        return None if found is None else (found[0], found[1], lambda: True)

    return SnapshotEnvironment(
        loader=FunctionLoader(load),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
        bytecode_cache=cache,
    )
