-- HRIS customCostRate -> confidential.employee_cost_rates (never in curated).
SELECT r.record_id                                         AS employee_id,
       staging.to_num_or_null(r.payload -> 'customCostRate') AS cost_rate,
       r.run_id
FROM latest_raw r
