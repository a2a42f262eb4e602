-- PSA milestone -> staging.milestones.
SELECT r.record_id                                          AS milestone_id,
       r.payload #>> '{project,id}'                         AS project_id,
       r.payload #>> '{project,code}'                       AS project_code,
       r.payload ->> 'name'                                 AS name,
       staging.to_num_or_null(r.payload -> 'amount')        AS amount,
       staging.to_date_or_null(r.payload ->> 'due_on')      AS due_on,
       r.payload ->> 'status'                               AS status,
       staging.to_ts_or_null(r.payload ->> 'completed_at')  AS completed_at,
       staging.to_ts_or_null(r.payload ->> 'accepted_at')   AS accepted_at,
       CASE WHEN jsonb_typeof(r.payload -> 'evidence') = 'array'
            THEN jsonb_array_length(r.payload -> 'evidence') ELSE 0 END AS evidence_count,
       staging.to_ts_or_null(r.payload ->> 'created_at')    AS created_at,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
