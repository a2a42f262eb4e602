-- Corrections the source systems need, set-based, each with its worth: the absolute
-- change in billable money it makes (0 for a new ERP job, the line amount for a new
-- billing line, hours x |rate difference| for a rate fix). Parameter: %(as_of)s (literal percent signs are doubled).
-- The idempotency key names the fact, so a correction is intended at most once.
WITH customer_of_company AS (
    SELECT c.company_id, c.name AS company_name,
           coalesce(cu.customer_id, cu_by_id.customer_id) AS customer_id
    FROM curated.companies c
    LEFT JOIN curated.customers cu ON cu.crm_company_id = c.company_id
    LEFT JOIN curated.customers cu_by_id ON cu_by_id.customer_id = c.erp_customer_id
),
-- 1. An active PSA project without an ERP job (its code as entityId), in its region's
--    ERP subsidiary (reference.erp_subsidiaries).
missing_jobs AS (
    SELECT 'erp_job'::text                         AS kind,
           'erp.job:' || p.code                    AS idempotency_key,
           p.code                                  AS project_code,
           p.project_id                            AS record_key,
           0::numeric                              AS worth,
           p.currency,
           format('create ERP job %%s for PSA project %%s (%%s)', p.code, p.project_id, p.name)
                                                   AS description,
           jsonb_build_object(
               'entityId', p.code,
               'companyName', coalesce(cc.company_name, p.name),
               'customer', jsonb_build_object('id', cc.customer_id),
               'status', 'active',
               'externalId', p.project_id,
               'startDate', p.starts_on,
               'subsidiary', jsonb_build_object('id', s.subsidiary_id)
           )                                       AS payload,
           NULL::text                              AS depends_on,
           cc.customer_id IS NOT NULL              AS feasible
    FROM curated.projects p
    LEFT JOIN customer_of_company cc ON cc.company_id = p.crm_company_id
    LEFT JOIN reference.erp_subsidiaries s ON s.region = p.region
    WHERE p.status = 'active'
      AND p.code IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM curated.jobs j WHERE j.project_code = p.code)
),
-- 2. An accepted fixed-fee milestone without a billing schedule line (and not invoiced).
missing_lines AS (
    SELECT 'erp_billing_line'::text,
           'erp.billing_line:milestone:' || m.milestone_id,
           p.code,
           m.milestone_id,
           abs(m.amount),
           p.currency,
           format('create ERP billing line %%s %%s for milestone %%s (%%s) of %%s',
                  to_char(m.amount, 'FM999G999G990D00'), p.currency, m.milestone_id, m.name, p.code),
           jsonb_build_object(
               'job', jsonb_build_object('id', j.job_id),
               'externalId', m.milestone_id,
               'amount', m.amount,
               'billDate', (m.accepted_at AT TIME ZONE 'UTC')::date
           ),
           CASE WHEN j.job_id IS NULL THEN 'erp.job:' || p.code END,
           (j.job_id IS NOT NULL OR mj.idempotency_key IS NOT NULL)
    FROM curated.milestones m
    JOIN curated.projects p ON p.project_id = m.project_id
    LEFT JOIN LATERAL (SELECT j.job_id FROM curated.jobs j WHERE j.project_code = p.code
                       ORDER BY (j.status = 'active') DESC, j.job_id LIMIT 1) j ON true
    LEFT JOIN missing_jobs mj ON mj.project_code = p.code AND mj.feasible
    WHERE p.billing_type = 'fixed_fee'
      AND m.status = 'accepted'
      AND (m.accepted_at AT TIME ZONE 'UTC')::date <= %(as_of)s
      AND m.amount > 0
      AND NOT EXISTS (SELECT 1 FROM curated.billing_schedule_lines b
                      WHERE b.milestone_id = m.milestone_id)
      AND NOT EXISTS (SELECT 1 FROM curated.invoices i
                      WHERE i.milestone_id = m.milestone_id AND i.status <> 'voided')
),
-- 3. An approved billable time entry whose rate differs from the rate card for its
--    role, currency and date (entries already billed or in an invoiced month are left alone;
--    so are entries two cards cover: overlapping cards are the quality rule
--    rate_card.overlapping, never two conflicting fixes). The key and the payload's
--    `if_unchanged` name the entry's version the fix was planned from: the write-back
--    re-reads the entry and skips the fix when it changed since (psops.writeback.delivery),
--    and a changed entry is planned afresh from its new version.
rate_fixes AS (
    SELECT 'psa_time_entry_rate'::text,
           'psa.time_entry_rate:' || t.time_entry_id || ':' || rc.rate::text || '@'
               || to_char(t.source_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           p.code,
           t.time_entry_id,
           round(t.hours * abs(rc.rate - coalesce(t.billable_rate, 0)), 2),
           p.currency,
           format('set rate of time entry %%s (%%s, %%s h on %%s) from %%s to %%s %%s',
                  t.time_entry_id, t.role, t.hours, t.spent_date,
                  coalesce(t.billable_rate::text, 'none'), rc.rate, p.currency),
           jsonb_build_object(
               'billable_rate', rc.rate,
               'if_unchanged', jsonb_build_object(
                   'billable_rate', t.billable_rate,
                   'updated_at', to_char(t.source_updated_at AT TIME ZONE 'UTC',
                                         'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
           NULL::text,
           true
    FROM curated.time_entries t
    JOIN curated.projects p ON p.project_id = t.project_id
    JOIN curated.rate_cards rc
      ON rc.role = t.role AND rc.currency = p.currency
     AND t.spent_date >= rc.effective_from
     AND (rc.effective_to IS NULL OR t.spent_date <= rc.effective_to)
    WHERE t.status = 'approved'
      AND t.billable
      AND NOT coalesce(t.is_billed, false)
      AND t.spent_date <= %(as_of)s
      AND (t.billable_rate IS NULL OR abs(t.billable_rate - rc.rate) > 0.005)
      AND t.source_updated_at IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM curated.rate_cards other
                      WHERE other.rate_card_id <> rc.rate_card_id
                        AND other.role = rc.role AND other.currency = rc.currency
                        AND t.spent_date >= other.effective_from
                        AND (other.effective_to IS NULL OR t.spent_date <= other.effective_to))
      AND NOT EXISTS (SELECT 1 FROM curated.jobs j JOIN curated.invoices i ON i.job_id = j.job_id
                      WHERE j.project_code = p.code AND i.status <> 'voided'
                        AND i.period_start = date_trunc('month', t.spent_date)::date)
)
SELECT * FROM missing_jobs
UNION ALL SELECT * FROM missing_lines
UNION ALL SELECT * FROM rate_fixes
ORDER BY 3, 1, 4
