"""`python -m psops.writeback.demo_summary [as_of]`: what the write-back created and
corrected, what waits for finance, and where the alert went (for `make demo`)."""

from __future__ import annotations

import sys

from psops.demo_summary import print_from_warehouse

LABEL = {"psa_project": "PSA project", "erp_job": "ERP job", "crm_deal_link": "CRM deal link",
         "erp_billing_line": "ERP billing line", "psa_time_entry_rate": "PSA rate fix"}


def summary_lines(conn) -> list[str]:
    lines = []
    created = conn.execute(
        """SELECT kind, purpose, count(*), count(*) FILTER (WHERE adopted),
                  string_agg(coalesce(project_code, record_key) || '=' || coalesce(remote_id, '?'),
                             ', ' ORDER BY id)
           FROM ops.outbox WHERE status = 'confirmed' GROUP BY kind, purpose ORDER BY purpose, kind"""
    ).fetchall()
    lines.append("Written to the source systems (ops.outbox, confirmed):")
    if not created:
        lines.append("  nothing")
    for kind, purpose, n, adopted, which in created:
        detail = which if kind != "psa_time_entry_rate" else f"{n} time entries"
        lines.append(f"  {LABEL[kind]:<17} {n:>3} ({purpose}{', ' + str(adopted) + ' adopted after a lost answer' if adopted else ''}): {detail[:90]}")
    other = conn.execute(
        """SELECT status, count(*), coalesce(sum(worth), 0) FROM ops.outbox
           WHERE status <> 'confirmed' GROUP BY status ORDER BY status""").fetchall()
    for status, n, worth in other:
        lines.append(f"  {status:<17} {n:>3} (worth {worth:,.2f})")
    for batch_id, n, worth, expires in conn.execute(
            """SELECT batch_id, corrections, total_worth, expires_at FROM ops.approval_batches
               WHERE status = 'awaiting_approval' ORDER BY created_at"""):
        lines.append(f"Awaiting finance: batch {batch_id}, {n} corrections worth {worth:,.2f}, "
                     f"expires {expires:%Y-%m-%d %H:%M} UTC: run psops_approve_corrections "
                     f"(UI: Required actions)")
    invalid = [r[0] for r in conn.execute(
        "SELECT record_key FROM ops.exceptions WHERE rule_id = 'deal.setup_invalid' "
        "AND status = 'open' ORDER BY record_key")]
    if invalid:
        lines.append(f"Deals that cannot be set up (ops.exceptions deal.setup_invalid): {', '.join(invalid)}")
    digest = conn.execute(
        """SELECT status, destination, items, text FROM ops.alert_digests
           ORDER BY id DESC LIMIT 1""").fetchone()
    if digest:
        lines.append(f"Alert: {digest[0]} to {digest[1]}, {digest[2]} items"
                     + (f" - {digest[3]}" if digest[3] else ""))
    return lines


def main(argv: list[str]) -> int:
    del argv  # the outbox is not per date
    return print_from_warehouse(summary_lines, "the outbox")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
