-- PSA project -> staging.projects.
SELECT r.record_id                                          AS project_id,
       r.payload ->> 'code'                                 AS code,
       r.payload ->> 'name'                                 AS name,
       nullif(r.payload ->> 'crm_deal_id', '')              AS crm_deal_id,
       nullif(r.payload ->> 'crm_company_id', '')           AS crm_company_id,
       r.payload ->> 'billing_type'                         AS billing_type,
       r.payload ->> 'status'                               AS status,
       staging.to_date_or_null(r.payload ->> 'starts_on')   AS starts_on,
       staging.to_date_or_null(r.payload ->> 'ends_on')     AS ends_on,
       staging.to_num_or_null(r.payload -> 'budget_hours')  AS budget_hours,
       staging.to_num_or_null(r.payload -> 'fee')           AS fee,
       r.payload ->> 'currency'                             AS currency,
       r.payload ->> 'region'                               AS region,
       r.payload #>> '{project_manager,id}'                 AS project_manager_id,
       r.payload #>> '{project_manager,email}'              AS project_manager_email,
       staging.to_ts_or_null(r.payload ->> 'created_at')    AS created_at,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
