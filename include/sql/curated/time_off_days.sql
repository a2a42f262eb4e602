-- HRIS time-off request -> one row per request-day from its `dates` object.
SELECT r.record_id || ':' || d.key                            AS time_off_day_id,
       r.record_id                                            AS request_id,
       r.payload ->> 'employeeId'                             AS employee_id,
       staging.to_date_or_null(d.key)                         AS day,
       d.key                                                  AS day_raw,
       r.payload #>> '{amount,unit}'                          AS unit,
       staging.to_num_or_null(to_jsonb(d.value))              AS amount,
       r.payload #>> '{status,status}'                        AS request_status,
       r.payload #>> '{type,name}'                            AS type_name,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
CROSS JOIN LATERAL jsonb_each_text(
    CASE WHEN jsonb_typeof(r.payload -> 'dates') = 'object' THEN r.payload -> 'dates'
         ELSE '{}'::jsonb END) AS d
