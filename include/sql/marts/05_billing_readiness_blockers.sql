-- marts.billing_readiness_blockers for %(as_of)s: every reason that blocks an item
-- (one that is neither invoiced nor not_due), with the record behind it, so that a
-- reader goes from a blocked row to the records to fix.
INSERT INTO marts.billing_readiness_blockers
    (as_of, project_code, project_id, item_type, item_id, reason,
     blocking_entity, blocking_record_id, detail)
WITH items AS (SELECT * FROM billing_items WHERE stage = 'evaluate'),
reasons AS (
    -- MILESTONE_NOT_ACCEPTED: not accepted, or accepted after the as-of date
    SELECT b.*, 'MILESTONE_NOT_ACCEPTED' AS reason, 'milestone' AS blocking_entity,
           b.item_id AS blocking_record_id,
           'status ' || coalesce(m.status, 'null') || ', accepted_at '
             || coalesce(m.accepted_at::text, 'null') AS detail
    FROM items b JOIN curated.milestones m ON m.milestone_id = b.item_id
    WHERE b.item_type = 'milestone' AND NOT b.accepted_by_as_of
    UNION ALL
    -- MISSING_EVIDENCE: no evidence document
    SELECT b.*, 'MISSING_EVIDENCE', 'milestone', b.item_id, 'no evidence document'
    FROM items b JOIN curated.milestones m ON m.milestone_id = b.item_id
    WHERE b.item_type = 'milestone' AND coalesce(m.evidence_count, 0) = 0
    UNION ALL
    -- NO_ACTIVE_PROJECT_CODE: no ERP job with the project's code and status active
    SELECT b.*, 'NO_ACTIVE_PROJECT_CODE', 'project', b.project_id,
           'no active ERP job with entityId ' || b.project_code
    FROM items b
    WHERE NOT EXISTS (SELECT 1 FROM project_jobs pj
                      WHERE pj.project_id = b.project_id AND pj.status = 'active')
    UNION ALL
    -- NO_BILLING_SCHEDULE: no billingMilestone with externalId = the milestone id
    SELECT b.*, 'NO_BILLING_SCHEDULE', 'milestone', b.item_id, 'no ERP billing schedule line'
    FROM items b
    WHERE b.item_type = 'milestone'
      AND NOT EXISTS (SELECT 1 FROM curated.billing_schedule_lines l WHERE l.milestone_id = b.item_id)
    UNION ALL
    -- BILLING_AMOUNT_MISMATCH: such a line's amount differs by more than 0.005
    SELECT b.*, 'BILLING_AMOUNT_MISMATCH', 'billing_schedule_line', l.billing_schedule_line_id,
           'line amount ' || coalesce(l.amount::text, 'null') || ' vs milestone ' || m.amount
    FROM items b
    JOIN curated.milestones m ON m.milestone_id = b.item_id
    JOIN curated.billing_schedule_lines l ON l.milestone_id = b.item_id
    WHERE b.item_type = 'milestone' AND (l.amount IS NULL OR abs(l.amount - m.amount) > 0.005)
    UNION ALL
    -- PENDING_CHANGE_REQUEST: the project has a pending change request
    SELECT b.*, 'PENDING_CHANGE_REQUEST', 'change_request', cr.change_request_id, cr.title
    FROM items b JOIN curated.change_requests cr ON cr.project_id = b.project_id
    WHERE b.item_type = 'milestone' AND cr.status = 'pending'
    UNION ALL
    -- UNAPPROVED_PURCHASE_ORDER: the project's job has a PO pendingApproval or rejected
    SELECT b.*, 'UNAPPROVED_PURCHASE_ORDER', 'purchase_order', po.purchase_order_id,
           'purchase order ' || coalesce(po.tran_id, po.purchase_order_id) || ' is ' || po.status
    FROM items b JOIN curated.purchase_orders po
      ON po.job_id IN (SELECT pj.job_id FROM project_jobs pj WHERE pj.project_id = b.project_id)
    WHERE po.status IN ('pendingApproval', 'rejected')
    UNION ALL
    -- UNAPPROVED_TIME: a billable entry of the month is draft or submitted
    SELECT b.*, 'UNAPPROVED_TIME', 'time_entry', te.time_entry_id, 'entry is ' || te.status
    FROM items b JOIN curated.time_entries te
      ON te.project_id = b.project_id AND date_trunc('month', te.spent_date)::date = b.month_start
    WHERE b.item_type = 'period' AND te.billable AND te.status IN ('draft', 'submitted')
    UNION ALL
    -- UNAPPROVED_EXPENSES: a billable expense of the month is draft or submitted
    SELECT b.*, 'UNAPPROVED_EXPENSES', 'expense', x.expense_id, 'expense is ' || x.status
    FROM items b JOIN curated.expenses x
      ON x.project_id = b.project_id AND date_trunc('month', x.spent_date)::date = b.month_start
    WHERE b.item_type = 'period' AND x.billable AND x.status IN ('draft', 'submitted')
    UNION ALL
    -- MISSING_RECEIPT: an approved billable expense of the month has no receipt
    SELECT b.*, 'MISSING_RECEIPT', 'expense', x.expense_id, 'approved expense without receipt'
    FROM items b JOIN curated.expenses x
      ON x.project_id = b.project_id AND date_trunc('month', x.spent_date)::date = b.month_start
    WHERE b.item_type = 'period' AND x.billable AND x.status = 'approved' AND NOT x.has_receipt
    UNION ALL
    -- RATE_MISMATCH: an approved billable entry's billable_rate is missing, or no rate
    -- card (its role, the project's currency, effectiveFrom <= spent_date <= effectiveTo
    -- or open-ended) has that rate (within 0.005)
    SELECT b.*, 'RATE_MISMATCH', 'time_entry', te.time_entry_id,
           'role ' || coalesce(te.role, 'null') || ', billable_rate '
             || coalesce(te.billable_rate::text, 'null') || ', card rate '
             || coalesce((SELECT string_agg(rc.rate::text, '/' ORDER BY rc.rate)
                          FROM curated.rate_cards rc
                          WHERE rc.role = te.role AND rc.currency = b.currency
                            AND rc.effective_from <= te.spent_date
                            AND (rc.effective_to IS NULL OR te.spent_date <= rc.effective_to)),
                         'none')
    FROM items b JOIN curated.time_entries te
      ON te.project_id = b.project_id AND date_trunc('month', te.spent_date)::date = b.month_start
    WHERE b.item_type = 'period' AND te.billable AND te.status = 'approved'
      AND (te.billable_rate IS NULL
           OR NOT EXISTS (SELECT 1 FROM curated.rate_cards rc
                          WHERE rc.role = te.role AND rc.currency = b.currency
                            AND rc.effective_from <= te.spent_date
                            AND (rc.effective_to IS NULL OR te.spent_date <= rc.effective_to)
                            AND abs(rc.rate - te.billable_rate) <= 0.005))
)
SELECT %(as_of)s::date, project_code, project_id, item_type, item_id, reason,
       blocking_entity, blocking_record_id, min(detail)
FROM reasons
GROUP BY project_code, project_id, item_type, item_id, reason, blocking_entity, blocking_record_id;
