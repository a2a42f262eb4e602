-- marts.billing_readiness for %(as_of)s: invoiced | not_due | ready | blocked, with the
-- blocking reasons (sorted by code point) taken from marts.billing_readiness_blockers.
INSERT INTO marts.billing_readiness
    (as_of, project_code, billing_type, item_type, item_id, amount, status,
     blocking_reasons, project_id, currency)
SELECT %(as_of)s::date, b.project_code, b.billing_type, b.item_type, b.item_id,
       coalesce(b.amount, 0),
       CASE WHEN b.stage <> 'evaluate' THEN b.stage
            WHEN r.reasons IS NULL THEN 'ready'
            ELSE 'blocked' END,
       coalesce(r.reasons, '{}'::text[]),
       b.project_id, b.currency
FROM billing_items b
LEFT JOIN (
    SELECT project_id, item_type, item_id,
           array_agg(reason ORDER BY reason COLLATE "C") AS reasons
    FROM (SELECT DISTINCT project_id, item_type, item_id, reason
          FROM marts.billing_readiness_blockers
          WHERE as_of = %(as_of)s::date) d
    GROUP BY project_id, item_type, item_id
) r ON r.project_id = b.project_id AND r.item_type = b.item_type AND r.item_id = b.item_id
   AND b.stage = 'evaluate';
