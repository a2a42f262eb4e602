-- CRM company -> staging.companies. `r` is the winning raw copy of each record.
SELECT r.record_id                                        AS company_id,
       r.payload #>> '{properties,name}'                  AS name,
       r.payload #>> '{properties,domain}'                AS domain,
       r.payload #>> '{properties,region}'                AS region,
       r.payload #>> '{properties,erp_customer_id}'       AS erp_customer_id,
       staging.to_ts_or_null(r.payload ->> 'createdAt')   AS created_at,
       coalesce(staging.to_bool_or_null(r.payload -> 'archived'), false) AS archived,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
