"""Renders a stream's request: the watermark, the date window and connection extras
go into the path, the query parameters and the body where the spec put placeholders."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from airflow.sdk.exceptions import AirflowFailException

from psops.connectors.spec import Stream

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
TIME_PLACEHOLDERS = {"since_iso", "since_epoch_ms"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value) -> datetime | None:
    """An ISO 8601 time (or epoch milliseconds) as an aware UTC datetime; None if unparseable
    (or beyond what a datetime in UTC holds)."""
    if value is None or value == "":
        return None
    text = str(value)
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        moment = datetime.fromisoformat(text)
        # in UTC: a time at the edge of the calendar that UTC cannot hold is unparseable
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


class RequestTemplate:
    """One stream's request with its placeholders bound (except the watermark)."""

    def __init__(self, stream: Stream, as_of: date, connection_extra: dict, system_label: str):
        self.stream = stream
        self.values: dict[str, str] = {}
        if stream.window:
            self.values["window_start"] = (as_of - timedelta(days=stream.window.days_before)).isoformat()
            self.values["window_end"] = (as_of + timedelta(days=stream.window.days_after)).isoformat()
        self._extra = connection_extra
        self._label = system_label
        self.path = self._render(stream.path, None)

    parse_time = staticmethod(parse_time)

    def params(self, since: datetime | None) -> dict:
        return {key: self._render(value, since) for key, value in self.stream.params.items()}

    def body(self, since: datetime | None):
        return self._render(self.stream.body, since) if self.stream.body is not None else None

    def _render(self, value, since: datetime | None):
        if isinstance(value, str):
            return PLACEHOLDER.sub(lambda match: self._value(match.group(1), since), value)
        if isinstance(value, dict):
            return {key: self._render(item, since) for key, item in value.items()}
        if isinstance(value, list):
            return [self._render(item, since) for item in value]
        return value

    def _value(self, name: str, since: datetime | None) -> str:
        if name in TIME_PLACEHOLDERS:
            moment = since or EPOCH
            return format_iso(moment) if name == "since_iso" else str(int(moment.timestamp() * 1000))
        if name in self.values:
            return self.values[name]
        if self._extra.get(name) not in (None, ""):
            return str(self._extra[name])
        raise AirflowFailException(
            f"{self._label}: stream {self.stream.name!r} needs `{name}`: set it in the "
            f"connection's extra (e.g. {{\"{name}\": \"...\"}})"
        )
