"""An in-memory table of JSON-ready records ordered by (updated, id).

Used for every resource except PSA time entries (see timeentries_store).
`updated_of` gives a sortable update key (an ISO string of fixed format or a
number); `id_of` a sortable id. Updates move a record to the end because the
sandbox clock only moves forward.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from typing import Any

Record = dict[str, Any]


class RecordTable:
    def __init__(
        self,
        records: Iterable[Record],
        updated_of: Callable[[Record], Any],
        id_of: Callable[[Record], Any],
    ) -> None:
        self._updated_of = updated_of
        self._id_of = id_of
        self._by_id: dict[Any, Record] = {}
        self._rows: list[Record] = []
        self._keys: list[tuple] = []
        for record in records:
            self._by_id[id_of(record)] = record
        self._rebuild()

    def _key(self, record: Record) -> tuple:
        return (self._updated_of(record), self._id_of(record))

    def _rebuild(self) -> None:
        self._rows = sorted(self._by_id.values(), key=self._key)
        self._keys = [self._key(r) for r in self._rows]

    def __len__(self) -> int:
        return len(self._rows)

    def all(self) -> list[Record]:
        return list(self._rows)

    def get(self, record_id: Any) -> Record | None:
        return self._by_id.get(record_id)

    def find(self, predicate: Callable[[Record], bool]) -> list[Record]:
        return [r for r in self._rows if predicate(r)]

    def first_index_since(self, since: Any) -> int:
        return bisect.bisect_left(self._keys, (since,))

    def slice_since(self, since: Any | None) -> list[Record]:
        """Records whose update key >= since, in (updated, id) order."""
        start = 0 if since is None else self.first_index_since(since)
        return self._rows[start:]

    def upsert(self, record: Record) -> None:
        """Insert or replace; a replaced record moves to its new sort place."""
        record_id = self._id_of(record)
        old = self._by_id.get(record_id)
        if old is not None:
            index = bisect.bisect_left(self._keys, self._key(old))
            del self._rows[index]
            del self._keys[index]
        self._by_id[record_id] = record
        key = self._key(record)
        index = bisect.bisect_right(self._keys, key)
        self._rows.insert(index, record)
        self._keys.insert(index, key)

    def remove(self, record_id: Any) -> None:
        """Forget a record (the source deleted it); unknown ids are ignored."""
        old = self._by_id.pop(record_id, None)
        if old is not None:
            index = bisect.bisect_left(self._keys, self._key(old))
            del self._rows[index]
            del self._keys[index]

    def max_id(self) -> Any:
        return max(self._by_id) if self._by_id else None
