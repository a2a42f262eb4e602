"""The options finance chooses from in psops_approve_corrections' approval task.

Import-light (no psycopg): the DAG file reads them at parse time, psops.writeback.approval
reads the answer with them.
"""

APPROVE = "Approve"
REJECT = "Reject"
OPTIONS = (APPROVE, REJECT)
DEFAULT = REJECT  # what an unanswered task resolves to (an expiry, see approval)
