-- Dead letters of the outbox: a write that failed on its PSOPS_OUTBOX_MAX_ATTEMPTS-th
-- send is given up as `dead` (never sent again; response_body keeps the last error).
--   awaiting_approval -> pending (approved) | rejected | expired
--   pending -> sent -> confirmed | failed;  failed -> sent again ... -> dead
-- The status CHECK keeps its name (outbox_status_check): a later migration that adds a
-- status drops and re-adds it by that name. Idempotent.
ALTER TABLE ops.outbox DROP CONSTRAINT IF EXISTS outbox_status_check;
ALTER TABLE ops.outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('awaiting_approval', 'pending', 'sent', 'confirmed', 'failed', 'dead',
                      'rejected', 'expired'));

-- The given-up writes as finance and the digest see them (the finance UI reads it as
-- psops_analyst, which may not read ops.outbox and its payloads).
CREATE OR REPLACE VIEW ops.dead_writes AS
SELECT idempotency_key, kind, system, purpose, project_code, deal_id, record_key,
       description, worth, currency, attempts, response_status,
       coalesce(response_body, 'no answer') AS reason,
       updated_at AS given_up_at
FROM ops.outbox
WHERE status = 'dead';
GRANT SELECT ON ops.dead_writes TO psops_analyst;
