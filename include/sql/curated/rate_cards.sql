-- ERP customrecord_rate_card -> staging.rate_cards.
SELECT r.record_id                                            AS rate_card_id,
       r.payload ->> 'role'                                   AS role,
       r.payload ->> 'currency'                               AS currency,
       staging.to_num_or_null(r.payload -> 'rate')            AS rate,
       staging.to_date_or_null(r.payload ->> 'effectiveFrom') AS effective_from,
       staging.to_date_or_null(r.payload ->> 'effectiveTo')   AS effective_to,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
