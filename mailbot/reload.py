"""Pick up edits to config.toml and templates/ without a restart, but only valid ones.

Admins edit the files of a running worker. An edit takes effect on the next cycle (or at once
on SIGHUP) after the same checks as `mailbot check`; a broken edit is refused with one log
line and the previous configuration keeps running.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mailbot.config import Config, ConfigError, load_config

log = logging.getLogger("mailbot")


def _stamp(config_path: Path, templates_dir: Path) -> tuple[float, ...]:
    """The newest modification time of the config and every template file."""
    paths = [config_path]
    if templates_dir.is_dir():
        paths += [p for p in templates_dir.rglob("*") if p.is_file()]
    stamps = []
    for path in paths:
        try:
            stamps.append(path.stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return (len(paths), max(stamps, default=0))


class _Refused(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0])
        self.problems = problems


class ConfigWatcher:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.path = config.source_path
        self._stamp = self._current() if self.path else None

    def _current(self) -> tuple[float, ...]:
        assert self.path is not None
        return _stamp(self.path, self.config.templates_dir)

    def reload_if_changed(self, force: bool = False) -> Config | None:
        """A new, checked config when the files changed (or when forced), else None."""
        if self.path is None:
            return None
        stamp = self._current()
        if not force and stamp == self._stamp:
            return None
        self._stamp = stamp  # a broken edit is reported once, not every cycle
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            log.error("config not reloaded, the previous one keeps running: %s", exc)
            return None
        from mailbot.reply.render import trial_templates
        from mailbot.reply.samples import check_templates

        try:
            with trial_templates(config):
                problems = check_templates(config)
                if problems:
                    raise _Refused(problems)
        except _Refused as refused:
            problems = refused.problems
            log.error(
                "templates not reloaded, the previous ones keep running: %s%s",
                problems[0],
                f" (and {len(problems) - 1} more)" if len(problems) > 1 else "",
            )
            return None
        self.config = config
        self._stamp = self._current()
        log.info("reloaded %s and the templates", self.path)
        return config
