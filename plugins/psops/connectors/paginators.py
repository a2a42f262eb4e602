"""The four ways the source systems page, as generators of record lists.

Each paginator sends the stream's rendered request through SourceApiHook and
yields one list of records per page. `count_matching` asks the system how many
records the query matches now (one record per page), which the engine uses to
prove that offset-style paging over changing data lost nothing.

Pages are parsed by `parse_page`: orjson, and only when it refuses a page the lenient
standard parser, which marks each number JSON cannot hold (NaN, Infinity, 1e400) as an
InvalidNumber so that the encoder rejects exactly the records holding one (and those
holding a lone surrogate escape), and the rest of the page loads.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from urllib.parse import urlsplit

import orjson
from airflow.sdk.exceptions import AirflowFailException

from psops.connectors.raw_loader import InvalidNumber
from psops.connectors.request_template import EPOCH, RequestTemplate
from psops.connectors.source_api_hook import SourceApiError
from psops.connectors.spec import Stream


def path_getter(path: str | tuple[str, ...]) -> Callable:
    """A fast getter for a dotted path ('.' = the object itself); missing → None. For a
    tuple of paths (a composite primary key) the values joined as "a:b", None when one
    is missing or empty."""
    if isinstance(path, tuple):
        return _joined_getter([path_getter(part) for part in path])
    if path == ".":
        return lambda obj: obj
    keys = tuple(path.split("."))

    def get(obj):
        for key in keys:
            if not isinstance(obj, dict):
                return None
            obj = obj.get(key)
        return obj

    return get


def _joined_getter(getters: list[Callable]) -> Callable:
    def get(obj):
        values = [getter(obj) for getter in getters]
        if any(value is None or value == "" for value in values):
            return None
        return ":".join(str(value) for value in values)

    return get


def parse_page(stream: Stream, response, detail: str = ""):
    """A response's JSON; a page orjson refuses is parsed again leniently (see above).
    Not JSON even then: SourceApiError naming the stream and the page (+ `detail`)."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(response.content, parse_constant=InvalidNumber,
                          parse_float=_lenient_float, parse_int=_lenient_int)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError
        url = urlsplit(response.url)
        page = url.path + (f"?{url.query}" if url.query else "")
        raise SourceApiError(f"{stream.system.upper()} {stream.name}: the page {page}{detail} "
                             f"is not JSON ({err})") from None


def _lenient_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else InvalidNumber(text)


def _lenient_int(text: str):
    """As orjson reads it: an integer within 64 bits, else a float."""
    if len(text) <= 20:
        value = int(text)
        if -(2 ** 63) <= value < 2 ** 64:
            return value
    return _lenient_float(text)


def _records(stream: Stream, data, where: str) -> list:
    records = path_getter(stream.records)(data)
    if not isinstance(records, list):
        raise AirflowFailException(
            f"{stream.system.upper()} {where}: the response has no record list at "
            f"`{stream.records}` (contract violation); got {type(records).__name__}"
        )
    return records


def pages(stream: Stream, hook, template: RequestTemplate, since: datetime) -> Iterator[list]:
    kind = stream.paginator.type
    if kind == "body_cursor":
        return _body_cursor_pages(stream, hook, template, since)
    if kind == "next_link":
        return _next_link_pages(stream, hook, template, since)
    if kind == "offset_has_more":
        return _offset_pages(stream, hook, template, since)
    return _single_response(stream, hook, template, since)


def _body_cursor_pages(stream: Stream, hook, template: RequestTemplate,
                       since: datetime) -> Iterator[list]:
    """CRM search: `after` in the body; a query may page through `result_cap` results,
    so a long sync restarts the search from the last update time it saw."""
    paginator = stream.paginator
    cursor_of = path_getter(paginator.cursor)
    updated_of = path_getter(stream.cursor_field)
    query_since = since or EPOCH
    while True:
        body = dict(template.body(query_since))
        body["limit"] = paginator.page_size
        last_updated = None
        while True:
            response = hook.request(stream.method, template.path, json=body,
                                    params=template.params(query_since), safe_to_retry=True)
            data = parse_page(stream, response, f" (after {body.get('after', 0)})")
            records = _records(stream, data, template.path)
            if records:
                last_updated = updated_of(records[-1])
            yield records
            after = cursor_of(data)
            if not after:
                return
            if paginator.result_cap and int(after) + paginator.page_size > paginator.result_cap:
                break  # the next page would pass the cap: restart from the last update time
            body["after"] = after
        restart_since = template.parse_time(last_updated)
        if restart_since is None or restart_since <= query_since:
            raise AirflowFailException(
                f"{stream.system.upper()} {stream.name}: more than {paginator.result_cap} records "
                f"share the update time {last_updated}; the search cannot page past them"
            )
        query_since = restart_since


def _next_link_pages(stream: Stream, hook, template: RequestTemplate,
                     since: datetime) -> Iterator[list]:
    """PSA: follow `links.next` (an absolute URL) until it is null."""
    next_of = path_getter(stream.paginator.next)
    response = hook.request("GET", template.path, params=template.params(since))
    while True:
        data = parse_page(stream, response)
        yield _records(stream, data, template.path)
        next_url = next_of(data)
        if not next_url:
            return
        response = hook.request("GET", next_url)


def _offset_pages(stream: Stream, hook, template: RequestTemplate,
                  since: datetime) -> Iterator[list]:
    """ERP: limit/offset with `hasMore`; each page starts `page_overlap` records before
    the previous page's end (at most half a page back), so a record that shifted back
    across the boundary while we paged is still read (duplicates are resolved downstream)."""
    paginator = stream.paginator
    has_more_of = path_getter(paginator.has_more)
    params = template.params(since)
    offset = 0
    while True:
        params[paginator.offset_param] = offset
        data = parse_page(stream, hook.request("GET", template.path, params=params))
        records = _records(stream, data, template.path)
        yield records
        if not has_more_of(data):
            return
        if not records:
            raise AirflowFailException(
                f"{stream.system.upper()} {template.path}: hasMore is true on an empty page "
                f"at offset {offset} (contract violation)"
            )
        offset += len(records) - min(paginator.page_overlap, len(records) // 2)


def _single_response(stream: Stream, hook, template: RequestTemplate,
                     since: datetime) -> Iterator[list]:
    """HRIS: everything in one response."""
    response = hook.request(stream.method, template.path, params=template.params(since),
                            json=template.body(since), safe_to_retry=True)
    yield _records(stream, parse_page(stream, response), template.path)


def count_matching(stream: Stream, hook, template: RequestTemplate, since: datetime) -> int | None:
    """How many records the stream's query matches right now (None: the API does not say)."""
    paginator = stream.paginator
    if not paginator.total:
        return None
    params = template.params(since)
    body = copy.deepcopy(template.body(since))
    if paginator.type == "body_cursor":
        body["limit"] = 1
    elif paginator.page_size_param:
        params[paginator.page_size_param] = 1
    response = hook.request(stream.method, template.path, params=params, json=body,
                            safe_to_retry=True)
    total = path_getter(paginator.total)(parse_page(stream, response, " (count)"))
    return int(total) if total is not None else None
