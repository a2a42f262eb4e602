-- PSA time entry -> staging.time_entries (user resolved to an HRIS employee by e-mail).
SELECT r.record_id                                          AS time_entry_id,
       staging.to_date_or_null(r.payload ->> 'spent_date')  AS spent_date,
       staging.to_num_or_null(r.payload -> 'hours')         AS hours,
       staging.to_bool_or_null(r.payload -> 'billable')     AS billable,
       staging.to_num_or_null(r.payload -> 'billable_rate') AS billable_rate,
       r.payload ->> 'role'                                 AS role,
       r.payload #>> '{user,id}'                            AS user_id,
       r.payload #>> '{user,email}'                         AS user_email,
       e.employee_id                                        AS employee_id,
       r.payload #>> '{project,id}'                         AS project_id,
       r.payload #>> '{project,code}'                       AS project_code,
       r.payload #>> '{task,id}'                            AS task_id,
       r.payload #>> '{task,name}'                          AS task_name,
       r.payload ->> 'notes'                                AS notes,
       r.payload ->> 'status'                               AS status,
       staging.to_ts_or_null(r.payload ->> 'submitted_at')  AS submitted_at,
       staging.to_ts_or_null(r.payload ->> 'approved_at')   AS approved_at,
       staging.to_bool_or_null(r.payload -> 'is_billed')    AS is_billed,
       staging.to_ts_or_null(r.payload ->> 'created_at')    AS created_at,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
LEFT JOIN staging.employee_by_email e ON e.email_lower = lower(r.payload #>> '{user,email}')
