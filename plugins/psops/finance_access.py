"""Who is finance: the Airflow users named in `PSOPS_FINANCE_USERS` (comma-separated,
default `finance`).

One rule for both places that need it: the finance pages (psops.ui.app answers 403
to any other logged-in user) and the approval of large corrections (the HITL task
of psops_approve_corrections is assigned to these users, so Airflow refuses anyone
else's answer). Both compare the auth manager's user id (`BaseUser.get_id()`; with
Airflow's SimpleAuthManager that is the user name) through the auth manager's own
`is_authorized_hitl_task`.

In the warehouse, finance is the role `FINANCE_ROLE` (migration 0010): what the
analyst role reads, plus the per-person cost rates (schema `confidential`) and every
row of marts.project_margin, of which psops_analyst sees only project-months with at
least 3 costed contributors (row level security).

Import-light: DAG files import it at parse time.
"""

from __future__ import annotations

from psops.settings import FINANCE_USERS

FINANCE_ROLE = "psops_finance"  # NOLOGIN; the warehouse owner may SET ROLE to it


def finance_users() -> list[str]:
    """The configured finance user ids, in order, without duplicates.

    A value that names nobody is an error rather than "nobody" or "everybody": Airflow
    treats a HITL task without assigned users as open to every user allowed to edit the
    DAG."""
    names = (name.strip() for name in FINANCE_USERS.text().split(","))
    users = list(dict.fromkeys(name for name in names if name))
    if not users:
        raise ValueError(f"{FINANCE_USERS.name} is set but names no user "
                         f"(comma-separated Airflow user names; default {FINANCE_USERS.default!r})")
    return users


def hitl_assignees() -> list[dict[str, str]]:
    """`assigned_users` for a HITLOperator: Airflow's HITLUser dicts ({"id", "name"})."""
    return [{"id": user, "name": user} for user in finance_users()]
