"""SourceApiHook: HttpHook with the four auth styles, throttling and honest errors.

HttpHook's defaults (providers-http 6.3.0) fight the source APIs: it sends
Basic auth whenever the connection has a login, every `extra` key as a header,
and no timeout. This hook sets auth explicitly per style, sends no extra as a
header, always uses a timeout, and keeps one keep-alive session.

Retry policy (bounded):
  * 429, and HRIS 503, with `Retry-After`: wait that long (capped), try again;
  * 429 without `Retry-After` (ERP): exponential backoff with full jitter;
  * 5xx and dropped connections: retried only when the request is safe to
    repeat (reads; a create is never repeated blindly);
  * 401: OAuth2 fetches a new token once; otherwise the credentials are wrong
    and the task fails at once, naming the system and the connection;
  * 400/404/422 (and other 4xx): the caller's bug: fail at once with the body.
Secrets never reach a log line: only method, path and status are logged.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from requests.auth import HTTPBasicAuth

from psops.settings import HTTP_BACKOFF_BASE_SECONDS, HTTP_MAX_ATTEMPTS

log = logging.getLogger(__name__)

USER_AGENT = "psops/0.1 (+airflow; professional-services ops pipeline)"
DEFAULT_TIMEOUT = (10.0, 120.0)  # connect, read (seconds)
MAX_RETRY_AFTER_S = 120.0
BACKOFF_CAP_S = 30.0
RETRYABLE_STATUSES = {500, 502, 503, 504}


# No (whole) answer came back: the connection failed, timed out, or went dead after the
# status line (a body cut off mid-way: requests' ChunkedEncodingError).
NO_ANSWER = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class SourceApiError(AirflowException):
    """A request that kept failing after bounded retries (Airflow may retry the task)."""


@dataclass
class RequestMetrics:
    """Counted per hook: every HTTP attempt, token requests and retries included."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    failed_requests: int = 0  # any answer other than 2xx, or none


class SourceApiHook(HttpHook):
    """One source system's API, reached through its Airflow HTTP connection."""

    conn_type = "http"
    hook_name = "psops source API"

    def __init__(self, http_conn_id: str, auth_style: str, system: str,
                 token_path: str | None = None, timeout=DEFAULT_TIMEOUT,
                 max_attempts: int | None = None) -> None:
        super().__init__(method="GET", http_conn_id=http_conn_id)
        self.auth_style = auth_style
        self.system = system
        self.token_path = token_path
        self.timeout = timeout
        self.max_attempts = max_attempts or HTTP_MAX_ATTEMPTS.integer()
        self.metrics = RequestMetrics()
        self._session: requests.Session | None = None
        self._connection = None
        self._access_token: str | None = None

    # -- session -----------------------------------------------------------------

    @property
    def connection(self):
        if self._connection is None:
            self._connection = self.get_connection(self.http_conn_id)
        return self._connection

    def get_conn(self, headers=None, extra_options=None) -> requests.Session:
        """A keep-alive session with explicit auth; connection extras are never headers."""
        if self._session is None:
            conn = self.connection
            self._set_base_url(conn)
            session = requests.Session()
            session = self._configure_session_from_mount_adapters(session)
            session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
            session.auth = None
            if self.auth_style == "bearer":
                self._require(conn.password, "password (the private-app token)")
                session.headers["Authorization"] = f"Bearer {conn.password}"
            elif self.auth_style == "bearer_account":
                self._require(conn.password, "password (the API token)")
                self._require(conn.login, "login (the account id)")
                session.headers["Authorization"] = f"Bearer {conn.password}"
                session.headers["PSA-Account-Id"] = str(conn.login)
            elif self.auth_style == "basic_api_key":
                self._require(conn.login, "login (the API key)")
                session.auth = HTTPBasicAuth(conn.login, "x")
            elif self.auth_style == "oauth2_client_credentials":
                self._require(conn.login, "login (the client id)")
                self._require(conn.password, "password (the client secret)")
            elif self.auth_style == "none":
                pass  # e.g. a chat incoming webhook: the secret is in the URL path
            else:
                raise AirflowFailException(f"unknown auth style {self.auth_style!r}")
            self._session = session
        if headers:
            self._session.headers.update(headers)
        return self._session

    def _require(self, value, what: str) -> None:
        if not value:
            raise AirflowFailException(
                f"{self.system.upper()}: connection '{self.http_conn_id}' has no {what}"
            )

    def extra(self, key: str):
        """A non-header setting from the connection's extra (e.g. HRIS `company`)."""
        value = self.connection.extra_dejson.get(key)
        if value in (None, ""):
            raise AirflowFailException(
                f"{self.system.upper()}: connection '{self.http_conn_id}' needs extra "
                f'{{"{key}": ...}}'
            )
        return value

    def url(self, path_or_url: str) -> str:
        """The URL of a path on the connection's host. An absolute URL (a next-page link
        from the answer) is followed only when its scheme, host and port are the
        connection's own: the request carries the system's credentials."""
        self.get_conn()
        if "://" not in path_or_url:
            return self.url_from_endpoint(path_or_url)
        if _origin(path_or_url) != _origin(self.url_from_endpoint("/")):
            raise AirflowFailException(
                f"{self.system.upper()}: refusing to send the credentials of connection "
                f"'{self.http_conn_id}' to {_origin(path_or_url)} (an answer linked there; "
                f"the connection's host is {_origin(self.url_from_endpoint('/'))})")
        return path_or_url

    # -- OAuth2 ----------------------------------------------------------------

    def _bearer_header(self) -> dict:
        if self.auth_style != "oauth2_client_credentials":
            return {}
        if self._access_token is None:
            self._access_token = self._fetch_token()
        return {"Authorization": f"Bearer {self._access_token}"}

    def _fetch_token(self) -> str:
        conn = self.connection
        response = self._send_with_retries(
            "POST", self.url(self.token_path or "/oauth2/token"),
            {"data": {"grant_type": "client_credentials", "client_id": conn.login,
                      "client_secret": conn.password}},
            safe_to_retry=True, authenticate=False,
        )
        token = response.json().get("access_token")
        if not token:
            raise AirflowFailException(
                f"{self.system.upper()}: token endpoint answered without access_token"
            )
        return token

    # -- requests --------------------------------------------------------------

    def request(self, method: str, path_or_url: str, *, params=None, json=None, data=None,
                safe_to_retry: bool | None = None,
                accept_statuses: frozenset[int] | set[int] = frozenset()) -> requests.Response:
        """Send one logical request; retry as the policy above says; return a 2xx response,
        or a response whose status the caller listed in `accept_statuses` (e.g. {404} for a
        lookup where "not found" is an answer, not an error)."""
        method = method.upper()
        if safe_to_retry is None:
            safe_to_retry = method == "GET"
        kwargs = {key: value for key, value in
                  (("params", params), ("json", json), ("data", data)) if value is not None}
        return self._send_with_retries(method, self.url(path_or_url), kwargs, safe_to_retry,
                                       accept_statuses=frozenset(accept_statuses))

    def _send_with_retries(self, method: str, url: str, kwargs: dict, safe_to_retry: bool,
                           authenticate: bool = True,
                           accept_statuses: frozenset[int] = frozenset()) -> requests.Response:
        session = self.get_conn()
        path = self._display_path(url)
        may_refresh_token = authenticate and self.auth_style == "oauth2_client_credentials"
        attempt = 0
        while True:
            attempt += 1
            headers = self._bearer_header() if authenticate else {}
            self.metrics.requests += 1
            try:
                response = session.request(method, url, headers=headers, timeout=self.timeout,
                                           **kwargs)
            except NO_ANSWER as err:
                self.metrics.failed_requests += 1
                self._retry_after_no_answer(err, attempt, method, path, safe_to_retry)
                continue
            if 200 <= response.status_code < 300 or response.status_code in accept_statuses:
                return response
            self.metrics.failed_requests += 1
            if response.status_code == 401 and may_refresh_token:
                log.info("%s: access token rejected (expired?); fetching a new one", self.system)
                self._access_token = None
                may_refresh_token = False
                self.metrics.retries += 1
                continue
            self._retry_after_error(response, attempt, method, path, safe_to_retry)

    def _retry_after_no_answer(self, err: Exception, attempt: int, method: str, path: str,
                               safe_to_retry: bool) -> None:
        """Wait before sending again a request that got no answer, or raise."""
        reason = f"no answer ({type(err).__name__})"
        if not safe_to_retry:
            raise SourceApiError(f"{self.system.upper()} {method} {path}: {reason}; "
                                 "not retried because the request may have been applied") from None
        self._wait_before_retry(attempt, method, path, reason)

    def _retry_after_error(self, response: requests.Response, attempt: int, method: str,
                           path: str, safe_to_retry: bool) -> None:
        """The back-off decision for an error answer: wait before sending again, or raise."""
        status = response.status_code
        if status in (401, 403):
            raise AirflowFailException(
                f"{self.system.upper()} rejected the credentials of connection "
                f"'{self.http_conn_id}' ({status} on {method} {path}): {_body(response)}"
            )
        retry_after = _retry_after_seconds(response)
        # 429 means "not applied", so even a create may be sent again; a 503 with
        # Retry-After (HRIS throttling) only when the request is safe to repeat.
        if status == 429 or (status == 503 and retry_after is not None and safe_to_retry):
            self.metrics.throttled += 1
            self._wait_before_retry(attempt, method, path, f"throttled ({status})",
                                    retry_after=retry_after)
        elif status in RETRYABLE_STATUSES and safe_to_retry:
            self._wait_before_retry(attempt, method, path, f"server error {status}")
        elif status in RETRYABLE_STATUSES:
            raise SourceApiError(
                f"{self.system.upper()} {method} {path}: {status} {_body(response)}; "
                "not retried because the request may have been applied"
            )
        else:
            raise AirflowFailException(
                f"{self.system.upper()} {method} {path} answered {status}: {_body(response)}"
            )

    def _display_path(self, url: str) -> str:
        """The URL path for messages and logs. Without auth (a chat webhook) the path itself
        is the secret: only its first segment is shown."""
        path = urlsplit(url).path
        if self.auth_style == "none":
            first = path.strip("/").split("/")[0]
            return f"/{first}/…(redacted)"
        return path

    def _wait_before_retry(self, attempt: int, method: str, path: str, reason: str,
                           retry_after: float | None = None) -> None:
        if attempt >= self.max_attempts:
            raise SourceApiError(
                f"{self.system.upper()} {method} {path}: {reason}, still failing after "
                f"{attempt} attempts"
            )
        if retry_after is not None:
            delay = min(retry_after, MAX_RETRY_AFTER_S)
        else:
            first_backoff = HTTP_BACKOFF_BASE_SECONDS.number()
            delay = random.uniform(0, min(BACKOFF_CAP_S, first_backoff * 2 ** (attempt - 1)))
        self.metrics.retries += 1
        log.warning("%s %s %s: %s; attempt %d of %d, retrying in %.2f s",
                    self.system.upper(), method, path, reason, attempt, self.max_attempts, delay)
        time.sleep(delay)


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _body(response: requests.Response, limit: int = 2000) -> str:
    text = response.text.strip()
    return text[:limit] + ("..." if len(text) > limit else "")


def _origin(url: str) -> str:
    """scheme://host:port of a URL, with the scheme's default port made explicit."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"
