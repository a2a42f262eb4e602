"""Airflow plugin: psops' finance pages in the Airflow UI.

Mounts the FastAPI app of `psops.ui.app` at /psops in the api-server and adds a
"Finance" entry to the UI navigation (the pages open inside the UI). The app is
imported on its first request only, so other Airflow processes (scheduler,
workers, `dags test`) that load plugins pay nothing for it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/psops"


class FinanceApp:
    """ASGI app that imports psops.ui.app on its first request and hands over to it."""

    def __init__(self):
        self._app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            from psops.ui.app import app

            self._app = app
        await self._app(scope, receive, send)


class PsopsFinancePlugin(AirflowPlugin):
    name = "psops_finance"
    fastapi_apps = [
        {"app": FinanceApp(), "url_prefix": URL_PREFIX, "name": "psops finance"},
    ]
    external_views = [
        {
            "name": "Finance",
            "href": f"{URL_PREFIX}/billing",
            "url_route": "psops-finance",
            "destination": "nav",
            "nav_top_level": True,
            "icon": f"{URL_PREFIX}/static/finance.svg",
        },
    ]
