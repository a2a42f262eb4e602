-- CRM deal -> staging.deals (CRM property values are all strings).
SELECT r.record_id                                                     AS deal_id,
       r.payload #>> '{properties,dealname}'                           AS deal_name,
       staging.to_num_or_null(r.payload #> '{properties,amount}')      AS amount,
       r.payload #>> '{properties,deal_currency_code}'                 AS currency,
       r.payload #>> '{properties,dealstage}'                          AS deal_stage,
       staging.to_ts_or_null(r.payload #>> '{properties,closedate}')   AS close_date_at,
       r.payload #>> '{properties,company_id}'                         AS company_id,
       r.payload #>> '{properties,billing_type}'                       AS billing_type,
       r.payload #>> '{properties,region}'                             AS region,
       r.payload #>> '{properties,service_line}'                       AS service_line,
       staging.to_date_or_null(r.payload #>> '{properties,contract_signed_date}') AS contract_signed_date,
       r.payload #>> '{properties,sow_reference}'                      AS sow_reference,
       nullif(r.payload #>> '{properties,psa_project_id}', '')         AS psa_project_id,
       staging.to_ts_or_null(r.payload ->> 'createdAt')                AS created_at,
       coalesce(staging.to_bool_or_null(r.payload -> 'archived'), false) AS archived,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
