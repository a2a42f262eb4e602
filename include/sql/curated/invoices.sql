-- ERP invoice -> staging.invoices.
SELECT r.record_id                                          AS invoice_id,
       r.payload ->> 'tranId'                               AS tran_id,
       r.payload #>> '{job,id}'                             AS job_id,
       r.payload #>> '{job,refName}'                        AS project_code,
       staging.to_date_or_null(r.payload ->> 'tranDate')    AS tran_date,
       staging.to_num_or_null(r.payload -> 'amount')        AS amount,
       r.payload ->> 'status'                               AS status,
       nullif(r.payload ->> 'milestoneExternalId', '')      AS milestone_id,
       staging.to_date_or_null(r.payload ->> 'periodStart') AS period_start,
       staging.to_date_or_null(r.payload ->> 'periodEnd')   AS period_end,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
