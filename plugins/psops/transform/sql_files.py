"""Reading the transform's SQL files (include/sql/...)."""

from __future__ import annotations

import re
from functools import lru_cache

from psops.settings import SQL_DIR

_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)


@lru_cache(maxsize=64)
def read_sql(relative: str) -> str:
    return (SQL_DIR / relative).read_text()


def statements(text: str) -> list[str]:
    """Split a file into statements at semicolons that end a line (our files never
    put one at a line end inside a statement)."""
    parts = (p.strip() for p in _STATEMENT_END.split(text))
    return [p for p in parts if p and not all(line.strip().startswith("--") or not line.strip()
                                               for line in p.splitlines())]
