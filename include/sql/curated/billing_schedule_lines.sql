-- ERP billingMilestone -> staging.billing_schedule_lines (externalId = PSA milestone id).
SELECT r.record_id                                       AS billing_schedule_line_id,
       r.payload #>> '{job,id}'                          AS job_id,
       r.payload #>> '{job,refName}'                     AS project_code,
       r.payload ->> 'externalId'                        AS milestone_id,
       staging.to_num_or_null(r.payload -> 'amount')     AS amount,
       staging.to_date_or_null(r.payload ->> 'billDate') AS bill_date,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
