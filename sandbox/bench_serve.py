"""Benchmark: serve 1,000,000 PSA time entries at per_page=2000 over real HTTP.

    PYTHONPATH=. .venv/bin/python -m sandbox.bench_serve [--time-entries N]
"""

from __future__ import annotations

import argparse
import time

import orjson
import requests

from sandbox.server import start_sandbox


def fetch_all(base_url: str, account: str, token: str, per_page: int,
              fast_json: bool = False) -> tuple[int, set]:
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {token}", "PSA-Account-Id": account,
                            "User-Agent": "psops-bench"})
    url: str | None = f"{base_url}/v2/time_entries?per_page={per_page}"
    count, ids = 0, set()
    while url:
        response = session.get(url, timeout=60)
        response.raise_for_status()
        page = orjson.loads(response.content) if fast_json else response.json()
        count += len(page["time_entries"])
        ids.update(entry["id"] for entry in page["time_entries"])
        url = page["links"]["next"]
    return count, ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-entries", type=int, default=1_000_000)
    parser.add_argument("--per-page", type=int, default=2000)
    args = parser.parse_args()
    started = time.perf_counter()
    sandbox = start_sandbox(time_entries=args.time_entries)
    built = time.perf_counter() - started
    try:
        creds = sandbox.credentials
        print(f"dataset built and servers started in {built:.1f} s")
        for label, fast in (("requests + response.json()", False),
                            ("requests + orjson.loads", True)):
            t0 = time.perf_counter()
            count, ids = fetch_all(sandbox.urls["psa"], creds.psa_account_id,
                                   creds.psa_token, args.per_page, fast)
            seconds = time.perf_counter() - t0
            print(f"{label}: fetched {count} time entries ({len(ids)} distinct) at "
                  f"per_page={args.per_page} in {seconds:.1f} s: "
                  f"{count / seconds:,.0f} records/s")
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
