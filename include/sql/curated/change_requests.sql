-- PSA change request -> staging.change_requests.
SELECT r.record_id                                          AS change_request_id,
       r.payload #>> '{project,id}'                         AS project_id,
       r.payload #>> '{project,code}'                       AS project_code,
       r.payload ->> 'title'                                AS title,
       staging.to_num_or_null(r.payload -> 'amount_delta')  AS amount_delta,
       r.payload ->> 'status'                               AS status,
       staging.to_ts_or_null(r.payload ->> 'requested_at')  AS requested_at,
       staging.to_ts_or_null(r.payload ->> 'decided_at')    AS decided_at,
       staging.to_ts_or_null(r.payload ->> 'created_at')    AS created_at,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
