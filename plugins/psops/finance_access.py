"""Who is finance: the Airflow users named in `PSOPS_FINANCE_USERS` (comma-separated,
default `finance`).

One rule for both places that need it: the finance pages (psops.ui.app answers 403
to any other logged-in user) and the approval of large corrections (the HITL task
of psops_approve_corrections is assigned to these users, so Airflow refuses anyone
else's answer). Both compare the auth manager's user id (`BaseUser.get_id()`; with
Airflow's SimpleAuthManager that is the user name) through the auth manager's own
`is_authorized_hitl_task`.

Import-light: DAG files import it at parse time.
"""

from __future__ import annotations

import os

FINANCE_USERS_ENV = "PSOPS_FINANCE_USERS"
DEFAULT_FINANCE_USERS = "finance"


def finance_users() -> list[str]:
    """The configured finance user ids, in order, without duplicates.

    An empty value is an error rather than "nobody" or "everybody": Airflow treats a
    HITL task without assigned users as open to every user allowed to edit the DAG."""
    raw = os.environ.get(FINANCE_USERS_ENV, DEFAULT_FINANCE_USERS)
    users = list(dict.fromkeys(u.strip() for u in raw.split(",") if u.strip()))
    if not users:
        raise ValueError(f"{FINANCE_USERS_ENV} is set but names no user "
                         f"(comma-separated Airflow user names; default {DEFAULT_FINANCE_USERS!r})")
    return users


def hitl_assignees() -> list[dict[str, str]]:
    """`assigned_users` for a HITLOperator: Airflow's HITLUser dicts ({"id", "name"})."""
    return [{"id": user, "name": user} for user in finance_users()]
