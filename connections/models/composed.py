"""Querysets composed into SQL once, then run again and again.

The ORM composes a queryset's SQL anew every time it runs it, and on the
requests every open live table repeats, composing costs more than running: a
page of entries with their consent-link flag takes the ORM about 0.9 ms to
write and PostgreSQL 0.35 ms to answer. A `Statement` keeps what the ORM wrote
(its SQL, parameters and the converters of each column) and runs it as the
ORM would, its rows converted and its objects built the same way.

Statements are kept per process under a key naming everything the SQL
depends on (`composed`); the caller owns that key and its completeness.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import CharField, Expression, Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql.compiler import SQLCompiler

# Statements kept per process: a few pages of many uploads, filters and pages.
KEPT = 1024
_kept: dict[Hashable, Statement] = {}


@dataclass(frozen=True)
class Statement:
    """One queryset's SQL (None: it matches nothing), with its compiler, which
    knows each column's converters and, for model rows, how to build them."""

    sql: str | None
    params: tuple
    compiler: SQLCompiler
    converters: dict

    @property
    def db(self) -> str:
        return self.compiler.using

    def raw_rows(self) -> list[tuple]:
        """The rows as the driver gives them (PostgreSQL: JSON still as text)."""
        if self.sql is None:
            return []
        with connections[self.db].cursor() as cursor:
            cursor.execute(self.sql, self.params)
            return cursor.fetchall()

    def convert(self, rows: list[tuple]) -> list[tuple]:
        """Raw rows as the ORM would give them (`values_list`)."""
        if not self.converters:
            return rows
        return [tuple(self.convert_row(row)) for row in rows]

    def convert_row(self, row: tuple) -> list:
        """One raw row as the ORM would give it (its `apply_converters`, without
        a generator per call: a page converts only the rows it sends whole)."""
        row = list(row)
        connection = self.compiler.connection
        for at, (converters, expression) in self.converters.items():
            value = row[at]
            for converter in converters:
                value = converter(value, expression, connection)
            row[at] = value
        return row

    def rows(self) -> list[tuple]:
        return self.convert(self.raw_rows())

    def objects(self, raw: list[tuple] | None = None) -> list[Model]:
        """The model objects of a model queryset, with what it `select_related`:
        of the rows `raw` (as `raw_rows` read them), else of a fresh run."""
        compiler = self.compiler
        klass_info = compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        names = [column[0].target.attname for column in compiler.select[start:end]]
        populators = get_related_populators(klass_info, compiler.select, self.db)
        built = []
        for row in self.rows() if raw is None else self.convert(raw):
            obj = klass_info["model"].from_db(self.db, names, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            built.append(obj)
        return built


def compose(queryset: QuerySet) -> Statement:
    compiler = queryset.query.get_compiler(using=queryset.db)
    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        sql, params = None, ()
    columns = [column[0] for column in compiler.select[: compiler.col_count]]
    return Statement(sql, tuple(params), compiler, compiler.get_converters(columns))


def composed(key: Hashable, queryset: Callable[[], QuerySet[Any]]) -> Statement:
    """The statement kept under `key`, composed from `queryset()` the first time."""
    statement = _kept.get(key)
    if statement is None:
        if len(_kept) >= KEPT:
            _kept.clear()
        statement = _kept[key] = compose(queryset())
    return statement


class RowVersion(Expression):
    """A token that moves with every write to a row, for a poll to tell a row
    it already sent from a changed one without comparing what the row holds.

    On PostgreSQL it is the row's `xmin`: the transaction that wrote the row's
    current version. Every write makes a new version with its writer's id, two
    transactions never share one, and VACUUM and freezing keep it (a write that
    changes nothing still moves it, which costs a resend, never a stale row).
    Elsewhere (SQLite) there is no such column: NULL, and the caller tells rows
    apart by their values."""

    output_field = CharField()

    def as_sql(self, compiler, connection):
        return "NULL", []

    def as_postgresql(self, compiler, connection):
        table = compiler.quote_name_unless_alias(compiler.query.base_table)
        return f"{table}.xmin::text", []
