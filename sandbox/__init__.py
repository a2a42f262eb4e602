"""Source-system sandbox: simulated CRM, PSA, ERP, HRIS and alert webhook APIs.

Start it with ``python -m sandbox`` or, from tests,
``from sandbox.server import start_sandbox``.
"""
