-- PSA expense -> staging.expenses (user resolved to an HRIS employee by e-mail).
SELECT r.record_id                                          AS expense_id,
       staging.to_date_or_null(r.payload ->> 'spent_date')  AS spent_date,
       staging.to_num_or_null(r.payload -> 'total_cost')    AS total_cost,
       staging.to_bool_or_null(r.payload -> 'billable')     AS billable,
       r.payload #>> '{expense_category,id}'                AS category_id,
       r.payload #>> '{expense_category,name}'              AS category_name,
       coalesce(jsonb_typeof(r.payload -> 'receipt') = 'object', false) AS has_receipt,
       r.payload #>> '{receipt,file_name}'                  AS receipt_file_name,
       r.payload ->> 'status'                               AS status,
       r.payload #>> '{user,id}'                            AS user_id,
       r.payload #>> '{user,email}'                         AS user_email,
       e.employee_id                                        AS employee_id,
       r.payload #>> '{project,id}'                         AS project_id,
       r.payload #>> '{project,code}'                       AS project_code,
       staging.to_ts_or_null(r.payload ->> 'created_at')    AS created_at,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
LEFT JOIN staging.employee_by_email e ON e.email_lower = lower(r.payload #>> '{user,email}')
