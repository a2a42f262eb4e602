-- Write-back (psops_writeback, psops_approve_corrections): the outbox of intended
-- writes to the source systems, the decisions on corrections, and the alert log.

-- One row per intended write, keyed by an idempotency key that names the business
-- fact (e.g. 'psa.project:deal:9052'), so no run, retry or re-run can intend it twice.
--   awaiting_approval -> pending (approved) | rejected | expired
--   pending -> sent (request on the wire, outcome unknown) -> confirmed | failed
--   failed -> sent (next run: look the record up first, adopt it or send again)
CREATE TABLE IF NOT EXISTS ops.outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key  text NOT NULL UNIQUE,
    kind             text NOT NULL CHECK (kind IN ('psa_project', 'erp_job', 'crm_deal_link',
                                                   'erp_billing_line', 'psa_time_entry_rate')),
    purpose          text NOT NULL CHECK (purpose IN ('deal_setup', 'correction')),
    system           text NOT NULL CHECK (system IN ('crm', 'psa', 'erp')),
    step             integer NOT NULL DEFAULT 1,      -- order within a deal set-up
    depends_on       text REFERENCES ops.outbox (idempotency_key),
    deal_id          text,
    project_code     text,
    record_key       text,                            -- the source record the write is about
    payload          jsonb NOT NULL,                  -- what to send (references resolved at send time)
    worth            numeric(14, 2) NOT NULL DEFAULT 0,
    currency         text,
    description      text NOT NULL,
    status           text NOT NULL CHECK (status IN ('awaiting_approval', 'pending', 'sent',
                                                     'confirmed', 'failed', 'rejected', 'expired')),
    batch_id         text,                            -- approval batch (large corrections)
    decided_by       text,                            -- who or what approved / rejected it
    decided_at       timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    adopted          boolean NOT NULL DEFAULT false,  -- confirmed by finding it after a lost answer
    remote_id        text,                            -- id of the record created / changed
    response_status  integer,
    response_body    text,
    planned_by_run   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    confirmed_at     timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_status_idx ON ops.outbox (status);
CREATE INDEX IF NOT EXISTS outbox_batch_idx ON ops.outbox (batch_id) WHERE batch_id IS NOT NULL;

-- Append-only log of every correction decision: who or what approved it, and why.
CREATE TABLE IF NOT EXISTS ops.correction_log (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id       bigint NOT NULL REFERENCES ops.outbox (id),
    idempotency_key text NOT NULL,
    project_code    text,
    kind            text NOT NULL,
    worth           numeric(14, 2) NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('auto_approved', 'held_for_approval',
                                                      'approved', 'rejected', 'expired')),
    decided_by      text NOT NULL,
    batch_id        text,
    dag_run_id      text,
    logged_at       timestamptz NOT NULL DEFAULT now()
);

-- Approval batches: one per psops_writeback run that held corrections back.
CREATE TABLE IF NOT EXISTS ops.approval_batches (
    batch_id        text PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    status          text NOT NULL CHECK (status IN ('awaiting_approval', 'approved', 'rejected',
                                                    'expired')),
    approval_run_id text,
    decided_by      text,
    decided_at      timestamptz,
    total_worth     numeric(14, 2) NOT NULL,
    corrections     integer NOT NULL
);

-- What was alerted when: an unchanged item (same key, same fingerprint) is not
-- alerted again within 24 hours of wall-clock time.
CREATE TABLE IF NOT EXISTS ops.alert_log (
    item_key        text PRIMARY KEY,
    fingerprint     text NOT NULL,
    section         text NOT NULL,
    last_alerted_at timestamptz NOT NULL
);

-- One row per digest sent (or attempted).
CREATE TABLE IF NOT EXISTS ops.alert_digests (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_run_id     text,
    as_of          date,
    sent_at        timestamptz NOT NULL DEFAULT now(),
    status         text NOT NULL CHECK (status IN ('sent', 'failed', 'nothing_new')),
    destination    text,
    items          integer NOT NULL,
    text           text,
    payload        jsonb,
    error          text
);
