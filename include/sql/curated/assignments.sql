-- PSA assignment -> staging.assignments (user resolved to an HRIS employee by e-mail).
SELECT r.record_id                                          AS assignment_id,
       r.payload #>> '{project,id}'                         AS project_id,
       r.payload #>> '{project,code}'                       AS project_code,
       r.payload #>> '{user,id}'                            AS user_id,
       r.payload #>> '{user,email}'                         AS user_email,
       e.employee_id                                        AS employee_id,
       r.payload ->> 'role'                                 AS role,
       staging.to_date_or_null(r.payload ->> 'starts_on')   AS starts_on,
       staging.to_date_or_null(r.payload ->> 'ends_on')     AS ends_on,
       staging.to_num_or_null(r.payload -> 'hours_per_week') AS hours_per_week,
       staging.to_ts_or_null(r.payload ->> 'created_at')    AS created_at,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
LEFT JOIN staging.employee_by_email e ON e.email_lower = lower(r.payload #>> '{user,email}')
