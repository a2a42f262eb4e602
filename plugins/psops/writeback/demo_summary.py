"""`python -m psops.writeback.demo_summary [as_of]`: what the write-back created and
corrected, what waits for finance, and where the alert went (for `make demo`)."""

from __future__ import annotations

import sys

from psycopg.rows import namedtuple_row

from psops.demo_summary import print_from_warehouse
from psops.formatting import money

LABEL = {"psa_project": "PSA project", "erp_job": "ERP job", "crm_deal_link": "CRM deal link",
         "erp_billing_line": "ERP billing line", "psa_time_entry_rate": "PSA rate fix"}

CONFIRMED = """
    SELECT kind, purpose, count(*) AS writes, count(*) FILTER (WHERE adopted) AS adopted,
           string_agg(coalesce(project_code, record_key) || '=' || coalesce(remote_id, '?'),
                      ', ' ORDER BY id) AS which
    FROM ops.outbox WHERE status = 'confirmed' GROUP BY kind, purpose ORDER BY purpose, kind
"""
NOT_CONFIRMED = """
    SELECT status, count(*) AS writes, coalesce(sum(worth), 0) AS worth FROM ops.outbox
    WHERE status <> 'confirmed' GROUP BY status ORDER BY status
"""
AWAITING_FINANCE = """
    SELECT batch_id, corrections, total_worth, expires_at FROM ops.approval_batches
    WHERE status = 'awaiting_approval' ORDER BY created_at
"""
INVALID_DEALS = """
    SELECT record_key FROM ops.exceptions
    WHERE rule_id = 'deal.setup_invalid' AND status = 'open' ORDER BY record_key
"""
LAST_DIGEST = """
    SELECT status, destination, items, text FROM ops.alert_digests ORDER BY id DESC LIMIT 1
"""


def summary_lines(conn) -> list[str]:
    with conn.cursor(row_factory=namedtuple_row) as cur:
        lines = ["Written to the source systems (ops.outbox, confirmed):"]
        lines += [_written_line(row) for row in cur.execute(CONFIRMED).fetchall()] or ["  nothing"]
        for row in cur.execute(NOT_CONFIRMED).fetchall():
            lines.append(f"  {row.status:<17} {row.writes:>3} (worth {money(row.worth)})")
        for batch in cur.execute(AWAITING_FINANCE).fetchall():
            lines.append(f"Awaiting finance: batch {batch.batch_id}, {batch.corrections} "
                         f"corrections worth {money(batch.total_worth)}, expires "
                         f"{batch.expires_at:%Y-%m-%d %H:%M} UTC: run psops_approve_corrections "
                         f"(UI: Required actions)")
        invalid = [row.record_key for row in cur.execute(INVALID_DEALS).fetchall()]
        if invalid:
            lines.append("Deals that cannot be set up (ops.exceptions deal.setup_invalid): "
                         + ", ".join(invalid))
        digest = cur.execute(LAST_DIGEST).fetchone()
        if digest:
            lines.append(f"Alert: {digest.status} to {digest.destination}, {digest.items} items"
                         + (f" - {digest.text}" if digest.text else ""))
    return lines


def _written_line(row) -> str:
    detail = row.which if row.kind != "psa_time_entry_rate" else f"{row.writes} time entries"
    adopted = f", {row.adopted} adopted after a lost answer" if row.adopted else ""
    return f"  {LABEL[row.kind]:<17} {row.writes:>3} ({row.purpose}{adopted}): {detail[:90]}"


def main(argv: list[str]) -> int:
    del argv  # the outbox is not per date
    return print_from_warehouse(summary_lines, "the outbox")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
