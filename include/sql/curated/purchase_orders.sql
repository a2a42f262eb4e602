-- ERP purchaseOrder -> staging.purchase_orders.
SELECT r.record_id                                    AS purchase_order_id,
       r.payload ->> 'tranId'                         AS tran_id,
       r.payload #>> '{job,id}'                       AS job_id,
       r.payload #>> '{job,refName}'                  AS project_code,
       r.payload #>> '{vendor,id}'                    AS vendor_id,
       r.payload #>> '{vendor,refName}'               AS vendor_name,
       staging.to_num_or_null(r.payload -> 'amount')  AS amount,
       r.payload ->> 'status'                         AS status,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
