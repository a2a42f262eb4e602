-- ERP job (project code) -> staging.jobs. entityId is the PSA project code.
SELECT r.record_id                                        AS job_id,
       r.payload ->> 'entityId'                           AS project_code,
       r.payload ->> 'companyName'                        AS company_name,
       r.payload #>> '{customer,id}'                      AS customer_id,
       r.payload ->> 'status'                             AS status,
       r.payload ->> 'externalId'                         AS psa_project_id,
       staging.to_date_or_null(r.payload ->> 'startDate') AS start_date,
       r.payload #>> '{subsidiary,id}'                    AS subsidiary_id,
       r.payload #>> '{subsidiary,refName}'               AS subsidiary_name,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
