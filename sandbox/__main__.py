"""`python -m sandbox`: serve the sandbox in the foreground and print how to reach it."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import date

from sandbox.faults import FaultConfig
from sandbox.server import DEFAULT_BASE_PORT, start_sandbox


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--today", type=date.fromisoformat, default=date(2026, 3, 31),
                   help="the dataset's as-of date (default 2026-03-31)")
    p.add_argument("--scale", type=float, default=1.0, help="people/projects multiplier")
    p.add_argument("--time-entries", type=int, default=None, help="exact time entry count")
    p.add_argument("--crm-deals", type=int, default=None, help="deal count (>10000: paging cap)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                   help="crm, psa, erp, hris, webhook on N..N+4 (0 = free ports)")
    p.add_argument("--ports", default=None,
                   help="explicit ports, e.g. crm=9001,psa=9002 (others from --base-port)")
    p.add_argument("--no-natural-limits", action="store_true",
                   help="switch off the products' own rate limits (on by default here)")
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--throttle-rate", type=float, default=0.0)
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--lost-response-rate", type=float, default=0.0)
    p.add_argument("--lost-response-mode", choices=("504", "drop"), default="504")
    p.add_argument("--anomaly-rate", type=float, default=0.0)
    p.add_argument("--token-lifetime", type=int, default=3600)
    p.add_argument("--fault-systems", default=None, help="e.g. psa,erp (default: all)")
    p.add_argument("--faults-json", default=None, help="any FaultConfig fields as JSON")
    return p.parse_args(argv)


def fault_config(args: argparse.Namespace) -> FaultConfig:
    settings = {
        "seed": args.seed, "natural_limits": not args.no_natural_limits,
        "error_rate": args.error_rate, "throttle_rate": args.throttle_rate,
        "latency_ms": args.latency_ms, "lost_response_rate": args.lost_response_rate,
        "lost_response_mode": args.lost_response_mode, "anomaly_rate": args.anomaly_rate,
        "token_lifetime": args.token_lifetime,
        "systems": args.fault_systems.split(",") if args.fault_systems else None,
    }
    settings.update(json.loads(args.faults_json) if args.faults_json else {})
    return FaultConfig.from_dict(settings)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    ports = dict(item.split("=") for item in args.ports.split(",")) if args.ports else None
    sandbox = start_sandbox(seed=args.seed, today=args.today, scale=args.scale,
                            time_entries=args.time_entries, crm_deals=args.crm_deals,
                            faults=fault_config(args), port=args.base_port, host=args.host,
                            ports={k: int(v) for k, v in (ports or {}).items()})
    print(f"sandbox up (seed {args.seed}, today {args.today}, "
          f"{len(sandbox.dataset.time_entries)} time entries)", flush=True)
    for system, url in sandbox.urls.items():
        print(f"  {system:8} {url}", flush=True)
    print("# environment for Airflow:", flush=True)
    for name, value in sandbox.conn_env().items():
        print(f"export {name}='{value}'", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    sandbox.stop()


if __name__ == "__main__":
    main()
