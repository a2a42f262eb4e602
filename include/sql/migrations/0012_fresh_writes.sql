-- Write-back freshness: an outbox row can end `skipped` - not sent, because its record
-- changed since the plan (e.g. a rate fix whose time entry was invoiced, corrected by
-- hand or edited meanwhile); response_body keeps the reason. The status list is the
-- one of 0006_writeback.sql, plus `dead` (0011: retries used up) and `skipped`.
--   pending | failed -> skipped (re-read before sending: no longer what was planned)
ALTER TABLE ops.outbox DROP CONSTRAINT IF EXISTS outbox_status_check;
ALTER TABLE ops.outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('awaiting_approval', 'pending', 'sent', 'confirmed', 'failed', 'rejected',
                      'expired', 'dead', 'skipped'));

-- Rate fixes planned before this migration carry no entry version (key without `@`): the
-- next plan proposes them again under a versioned key, so the ones not sent yet are
-- superseded here instead of being sent (or counted towards the approval window) twice.
UPDATE ops.outbox
SET status = 'skipped', updated_at = now(),
    response_body = 'superseded: planned again with the time entry''s version (migration 0012)'
WHERE kind = 'psa_time_entry_rate' AND status IN ('pending', 'failed')
  AND idempotency_key NOT LIKE '%@%';
