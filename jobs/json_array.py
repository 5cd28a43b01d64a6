"""Appending to and dropping from a JSON array column inside an UPDATE (PostgreSQL's jsonb, SQLite's JSON1).

The claim records each attempt's worker in `worker_ids` in the same statement that
claims the job, and a release (a claim undone) drops it again: no extra round trip.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, Func, JSONField, Value
from django.db.models.sql.compiler import SQLCompiler


class JSONArrayAppend(Func):
    """`column` with the string `value` appended at its end."""

    output_field = JSONField()

    def __init__(self, column: str, value: str) -> None:
        super().__init__(F(column), Value(value))

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra_context: Any) -> Any:
        (column, column_params), (value, value_params) = (compiler.compile(e) for e in self.source_expressions)
        return f"json_insert({column}, '$[#]', {value})", (*column_params, *value_params)

    def as_postgresql(self, compiler: SQLCompiler, connection: Any, **extra_context: Any) -> Any:
        (column, column_params), (value, value_params) = (compiler.compile(e) for e in self.source_expressions)
        return f"({column} || jsonb_build_array(({value})::text))", (*column_params, *value_params)


class JSONArrayDropLast(Func):
    """`column` without its last element."""

    output_field = JSONField()

    def __init__(self, column: str) -> None:
        super().__init__(F(column))

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra_context: Any) -> Any:
        column, params = compiler.compile(self.source_expressions[0])
        return f"json_remove({column}, '$[#-1]')", params

    def as_postgresql(self, compiler: SQLCompiler, connection: Any, **extra_context: Any) -> Any:
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} - (-1))", params
