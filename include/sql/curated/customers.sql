-- ERP customer -> staging.customers.
SELECT r.record_id                  AS customer_id,
       r.payload ->> 'companyName'  AS company_name,
       r.payload ->> 'externalId'   AS crm_company_id,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
