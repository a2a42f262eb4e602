"""A small client of Airflow's REST API (/api/v2), logged in through `/auth/token` as a
user of the simple auth manager: what the demo and the stack test use to drive the
local stack the way a user's script would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class AirflowApi:
    """A small client of Airflow's REST API (/api/v2) logged in as one stack user."""

    def __init__(self, url: str, username: str, password: str):
        self.url = url.rstrip("/")
        self.username = username
        response = self._send("POST", "/auth/token",
                              {"username": username, "password": password}, token=None)
        self.token = response["access_token"]

    def get(self, path: str, **query) -> dict:
        from urllib.parse import urlencode

        suffix = f"?{urlencode(query, doseq=True)}" if query else ""
        return self._send("GET", f"/api/v2{path}{suffix}")

    def post(self, path: str, body: dict) -> dict:
        return self._send("POST", f"/api/v2{path}", body)

    def patch(self, path: str, body: dict) -> dict:
        return self._send("PATCH", f"/api/v2{path}", body)

    def _send(self, method: str, path: str, body: dict | None = None,
              token: str | None | bool = True) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, f"{method} {path}: HTTP {err.code}: "
                                     f"{err.read()[:500].decode(errors='replace')}") from None
        return json.loads(text) if text else {}


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
