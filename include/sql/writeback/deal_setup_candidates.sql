-- Closed-won deals with a signed contract and no PSA project: the deal-to-project
-- set-up candidates, each with the reasons (if any) it cannot be set up. A region
-- without an ERP subsidiary (reference.erp_subsidiaries) is REGION_UNKNOWN.
-- Parameters: none. A deal counts as having a project when the CRM says so
-- (psa_project_id) or the PSA has a project made for it (crm_deal_id).
SELECT d.deal_id,
       d.deal_name,
       d.amount,
       d.currency,
       d.billing_type,
       d.region,
       d.company_id,
       c.name                                                AS company_name,
       coalesce(cu.customer_id, cu_by_id.customer_id)        AS erp_customer_id,
       d.contract_signed_date,
       s.subsidiary_id                                       AS erp_subsidiary_id,
       array_remove(ARRAY[
           CASE WHEN d.billing_type IS NULL OR d.billing_type NOT IN ('fixed_fee', 'time_and_materials')
                THEN 'BILLING_TYPE_MISSING' END,
           CASE WHEN coalesce(d.amount, 0) <= 0 THEN 'AMOUNT_NOT_POSITIVE' END,
           CASE WHEN c.company_id IS NULL THEN 'COMPANY_UNKNOWN'
                WHEN coalesce(cu.customer_id, cu_by_id.customer_id) IS NULL THEN 'NO_ERP_CUSTOMER' END,
           CASE WHEN s.subsidiary_id IS NULL THEN 'REGION_UNKNOWN' END,
           CASE WHEN d.currency IS NULL OR d.currency = '' THEN 'CURRENCY_MISSING' END
       ], NULL)                                              AS reasons
FROM curated.deals d
LEFT JOIN curated.companies c ON c.company_id = d.company_id
LEFT JOIN curated.customers cu ON cu.crm_company_id = d.company_id
LEFT JOIN curated.customers cu_by_id ON cu_by_id.customer_id = c.erp_customer_id
LEFT JOIN reference.erp_subsidiaries s ON s.region = d.region
WHERE d.deal_stage = 'closedwon'
  AND d.contract_signed_date IS NOT NULL
  AND d.psa_project_id IS NULL
  AND NOT coalesce(d.archived, false)
  AND NOT EXISTS (SELECT 1 FROM curated.projects p WHERE p.crm_deal_id = d.deal_id)
ORDER BY d.contract_signed_date, d.deal_id
