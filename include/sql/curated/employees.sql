-- HRIS employee (every value a string) -> staging.employees. customCostRate is NOT
-- here: see employee_cost_rates.sql (schema confidential).
SELECT r.record_id                                                AS employee_id,
       r.payload ->> 'displayName'                                AS display_name,
       nullif(btrim(r.payload ->> 'workEmail'), '')               AS email,
       r.payload ->> 'jobTitle'                                   AS job_title,
       r.payload ->> 'department'                                 AS department,
       r.payload ->> 'location'                                   AS location,
       r.payload ->> 'status'                                     AS status,
       staging.to_date_or_null(r.payload ->> 'hireDate')          AS hire_date,
       r.payload ->> 'hireDate'                                   AS hire_date_raw,
       staging.to_date_or_null(r.payload ->> 'terminationDate')   AS termination_date,
       r.payload ->> 'terminationDate'                            AS termination_date_raw,
       staging.to_num_or_null(r.payload -> 'customStandardHoursPerWeek') AS standard_hours_per_week,
       staging.to_num_or_null(r.payload -> 'customTargetUtilization')    AS target_utilization_percent,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
