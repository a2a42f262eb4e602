"""The writes psops makes to the source systems, and the lookups that prove them.

Every create has a lookup by a key the caller chose (PSA: `crm_deal_id`; ERP:
`externalId` via `…/{recordType}/eid:{externalId}`), so a create whose answer was
lost can be found and adopted instead of sent again. Every PATCH has a read-back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from psops import catalogue
from psops.connectors.engine import make_hook
from psops.connectors.source_api_hook import SourceApiHook

log = logging.getLogger(__name__)

ERP_RECORDS = "/services/rest/record/v1"


@dataclass
class Found:
    """A record found in a source system: its id and the record itself."""

    remote_id: str
    record: dict


class SourceWrites:
    """Hooks for CRM, PSA and ERP (connection, auth and token path from the catalogue),
    created on first use (one session each)."""

    def __init__(self, hooks: dict[str, SourceApiHook] | None = None,
                 max_attempts: int | None = None):
        self._hooks = dict(hooks or {})
        self._max_attempts = max_attempts

    def hook(self, system: str) -> SourceApiHook:
        if system not in self._hooks:
            self._hooks[system] = make_hook(catalogue.system(system), self._max_attempts)
        return self._hooks[system]

    def metrics(self) -> dict[str, dict]:
        return {system: vars(hook.metrics) for system, hook in self._hooks.items()}

    # -- PSA projects ------------------------------------------------------------

    def find_projects_by_deal(self, deal_id: str) -> list[dict]:
        response = self.hook("psa").request(
            "GET", "/v2/projects", params={"crm_deal_id": deal_id, "per_page": 100})
        return sorted(response.json().get("projects") or [], key=lambda p: int(p["id"]))

    def find_project_by_deal(self, deal_id: str) -> Found | None:
        projects = self.find_projects_by_deal(deal_id)
        if len(projects) > 1:
            log.warning("PSA has %d projects for deal %s (ids %s): adopting the oldest",
                        len(projects), deal_id, [p["id"] for p in projects])
        return Found(str(projects[0]["id"]), projects[0]) if projects else None

    def create_project(self, body: dict) -> Found:
        response = self.hook("psa").request("POST", "/v2/projects", json=body, safe_to_retry=False)
        record = response.json()
        return Found(str(record["id"]), record)

    def get_project(self, project_id: str) -> dict:
        return self.hook("psa").request("GET", f"/v2/projects/{_segment(project_id)}").json()

    def project_codes_updated_since(self, since: str | None) -> list[str]:
        """Codes of PSA projects changed since `since` (all when None): the newest codes
        may not have reached the warehouse yet."""
        params = {"per_page": 2000}
        if since:
            params["updated_since"] = since
        hook = self.hook("psa")
        url: str | None = "/v2/projects"
        codes: list[str] = []
        while url:
            body = hook.request("GET", url, params=params if url == "/v2/projects" else None).json()
            codes += [p.get("code") for p in body.get("projects") or [] if p.get("code")]
            url = (body.get("links") or {}).get("next")
        return codes

    # -- ERP records --------------------------------------------------------------

    def find_erp(self, record_type: str, external_id: str) -> Found | None:
        response = self.hook("erp").request(
            "GET", f"{ERP_RECORDS}/{record_type}/eid:{_segment(external_id)}", accept_statuses={404})
        if response.status_code == 404:
            return None
        record = response.json()
        return Found(str(record["id"]), record)

    def create_erp(self, record_type: str, body: dict) -> Found:
        response = self.hook("erp").request(
            "POST", f"{ERP_RECORDS}/{record_type}", json=body, safe_to_retry=False)
        location = response.headers.get("Location", "")
        remote_id = urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1] if location else ""
        return Found(remote_id, {"location": location})

    # -- CRM deals ---------------------------------------------------------------

    def patch_deal(self, deal_id: str, properties: dict) -> dict:
        return self.hook("crm").request(
            "PATCH", f"/crm/v3/objects/deals/{_segment(deal_id)}", json={"properties": properties},
            safe_to_retry=False).json()

    def get_deal(self, deal_id: str, properties: list[str]) -> dict:
        return self.hook("crm").request(
            "GET", f"/crm/v3/objects/deals/{_segment(deal_id)}",
            params={"properties": ",".join(properties)}).json()

    # -- PSA time entries ----------------------------------------------------------

    def patch_time_entry(self, entry_id: str, changes: dict) -> dict:
        return self.hook("psa").request(
            "PATCH", f"/v2/time_entries/{_segment(entry_id)}", json=changes, safe_to_retry=False).json()

    def get_time_entry(self, entry_id: str) -> dict:
        return self.hook("psa").request("GET", f"/v2/time_entries/{_segment(entry_id)}").json()

    def find_time_entry(self, entry_id: str) -> dict | None:
        """The time entry as the PSA holds it now (None: it is gone)."""
        response = self.hook("psa").request(
            "GET", f"/v2/time_entries/{_segment(entry_id)}", accept_statuses={404})
        return None if response.status_code == 404 else response.json()


def _segment(record_id) -> str:
    """An id as one URL path segment: percent-encoded, so `/`, `?` or `#` in an id from a
    source can never reach another resource."""
    return quote(str(record_id), safe="")
