"""The four ways the source systems page, as generators of record lists.

Each paginator sends the stream's rendered request through SourceApiHook and
yields one list of records per page. `count_matching` asks the system how many
records the query matches now (one record per page), which the engine uses to
prove that offset-style paging over changing data lost nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import datetime

import orjson
from airflow.sdk.exceptions import AirflowFailException

from psops.connectors.request_template import EPOCH, RequestTemplate
from psops.connectors.spec import Stream


def path_getter(path: str) -> Callable:
    """A fast getter for a dotted path ('.' = the object itself); missing → None."""
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
            data = orjson.loads(hook.request(stream.method, template.path, json=body,
                                             params=template.params(query_since),
                                             safe_to_retry=True).content)
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
        data = orjson.loads(response.content)
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
        data = orjson.loads(hook.request("GET", template.path, params=params).content)
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
    yield _records(stream, orjson.loads(response.content), template.path)


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
    total = path_getter(paginator.total)(orjson.loads(response.content))
    return int(total) if total is not None else None
