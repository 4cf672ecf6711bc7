"""The statements of every mail, run on SQLite's own cursor: same SQL, same stored values.

`Connection.execute` costs 50-90 µs of Python per statement before SQLite sees it (an
execution context, parameter processing, a result object); SQLite itself then takes 3-10 µs.
A rush runs about a dozen statements per mail, so that overhead was about a third of the
poll's CPU (bench/rush.py, py-spy). `DriverStatements` compiles each prebuilt statement
once, with SQLAlchemy, for the dialect and the set of values given, and then runs it on the
driver connection of the caller's own transaction (the SAVEPOINTs and BEGIN IMMEDIATE that
SQLAlchemy issued are on that same connection). Values go through the bind processors the
compiled statement names, so what is stored is what `Connection.execute` stores; column
defaults (all scalars in schema.py) fill what the caller leaves out, as SQLAlchemy does.

Only for SQLite, whose driver takes "?" parameters and reports `lastrowid`; other databases
keep `Connection.execute` (Store decides). Rows come back as plain tuples: only statements
whose columns need no result processing (integers, text) are read this way.

One processor is replaced: a `UtcDateTime` value, about eleven per mail, is written by
`utc_text` in one C call instead of SQLAlchemy's two Python steps (aware to naive UTC, then a
%-format of seven fields); the text is the same (tests/test_store_driver.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import TypeEngine

from mailbot.store.schema import UtcDateTime

# What SQLAlchemy's SQLite DATETIME writes unless a column asks for another storage format.
SQLITE_DATETIME_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    fixed: Mapping[str, Any]  # values not given by the caller: literals and column defaults


class DriverStatements:
    """Compiled statements by (statement, value names), and their execution."""

    def __init__(self, dialect: Dialect) -> None:
        if dialect.paramstyle != "qmark":
            raise ValueError(f"driver statements need qmark parameters, not {dialect.paramstyle}")
        self.dialect = dialect
        self._compiled: dict[tuple[ClauseElement, frozenset[str]], _Compiled] = {}

    def _compile(self, statement: ClauseElement, names: frozenset[str]) -> _Compiled:
        key = (statement, names)
        found = self._compiled.get(key)
        if found is None:
            # An INSERT or UPDATE without .values() sets the columns it is given values for.
            column_keys = sorted(names) if isinstance(statement, Insert | Update) else None
            compiled = statement.compile(dialect=self.dialect, column_keys=column_keys)
            order = tuple(compiled.positiontup or ())
            processors = tuple(
                bind_processor(compiled.binds[name].type, self.dialect) for name in order
            )
            fixed = {
                name: _fixed_value(statement, compiled.binds[name])
                for name in order
                if name not in names
            }
            found = _Compiled(compiled.string, order, processors, fixed)
            self._compiled[key] = found
        return found

    def _run(self, conn: Connection, statement: ClauseElement, values: Mapping[str, Any]) -> Any:
        compiled = self._compile(statement, frozenset(values))
        return self._execute(conn, compiled, self._params(compiled, values))

    @staticmethod
    def _params(compiled: _Compiled, values: Mapping[str, Any]) -> list[Any]:
        params = []
        for name, process in zip(compiled.names, compiled.processors, strict=True):
            value = values[name] if name in values else compiled.fixed[name]
            params.append(value if process is None else process(value))
        return params

    def _execute(
        self, conn: Connection, compiled: _Compiled, params: Any, many: bool = False
    ) -> Any:
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            if many:
                return driver.executemany(compiled.sql, params)
            return driver.execute(compiled.sql, params)
        except self.dialect.loaded_dbapi.Error as exc:
            # As Connection.execute raises it (OperationalError for "database is locked",
            # IntegrityError …), so callers catch the same exceptions on both paths.
            raise DBAPIError.instance(
                compiled.sql,
                params,
                exc,
                self.dialect.loaded_dbapi.Error,
                dialect=self.dialect,
                ismulti=many,
            ) from exc

    def insert(self, conn: Connection, statement: ClauseElement, values: Mapping[str, Any]) -> int:
        """Run an INSERT; the new row's id."""
        return int(self._run(conn, statement, values).lastrowid)

    def change(self, conn: Connection, statement: ClauseElement, values: Mapping[str, Any]) -> int:
        """Run an UPDATE or DELETE; the number of rows it changed."""
        return int(self._run(conn, statement, values).rowcount)

    def change_many(
        self, conn: Connection, statement: ClauseElement, rows: Sequence[Mapping[str, Any]]
    ) -> int:
        """Run an UPDATE or DELETE once per row of values, in one call (all rows give the
        same names); the number of rows changed in all."""
        if not rows:
            return 0
        compiled = self._compile(statement, frozenset(rows[0]))
        params = [self._params(compiled, values) for values in rows]
        return int(self._execute(conn, compiled, params, many=True).rowcount)

    def first(
        self, conn: Connection, statement: ClauseElement, values: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """The first row of a SELECT, as a tuple, or None."""
        row = self._run(conn, statement, values).fetchone()
        return None if row is None else tuple(row)


def bind_processor(bind_type: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """SQLAlchemy's processor for a bound value, or `utc_text` where it writes the same text."""
    adapted = bind_type.dialect_impl(dialect)
    # The type itself, not a subclass: one may bind its values differently.
    if type(adapted) is UtcDateTime and dialect.name == "sqlite":
        stored_as = getattr(adapted.impl_instance, "_storage_format", None)
        if stored_as == SQLITE_DATETIME_FORMAT:
            return utc_text
    return adapted.bind_processor(dialect)


def utc_text(value: datetime | None) -> str | None:
    """An aware datetime as SQLite's DATETIME text of its UTC time: "2018-02-09 23:00:00.000000"."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the database; pass an aware one")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _fixed_value(statement: ClauseElement, bind: BindParameter[Any]) -> Any:
    """What SQLAlchemy binds for a parameter the caller does not give: a literal written into
    the statement (`attempts + 1`, `last_error=None`), or an INSERT column's default."""
    if isinstance(statement, Insert) and bind.key in statement.table.c:
        default = statement.table.c[bind.key].default
        if default is None or not default.is_scalar:
            raise ValueError(f"{statement.table.name}.{bind.key} needs a value: no scalar default")
        return default.arg
    if bind.required or bind.callable is not None:
        raise ValueError(f"the statement needs a value for {bind.key!r}")
    return bind.value
