-- HRIS whos_out entries of type holiday -> staging.holidays (timeOff entries ignored:
-- time off comes from the requests). Holidays and time off are numbered separately, so
-- the record id is "<type>:<id>" (e.g. holiday:12), the key of the holiday too.
SELECT r.record_id                                    AS holiday_id,
       r.payload ->> 'name'                           AS name,
       staging.to_date_or_null(r.payload ->> 'start') AS start_date,
       staging.to_date_or_null(r.payload ->> 'end')   AS end_date,
       r.source_updated_at, r.load_seq, r.run_id
FROM latest_raw r
WHERE r.payload ->> 'type' = 'holiday'
