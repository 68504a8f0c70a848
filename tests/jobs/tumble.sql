-- A researcher's own SQL (tests/test_jobs.py): a tumbling window instead of the built-in HOP, on the
-- harness's `events` source and `results` sink; {window} is the cell's window size.
CREATE TEMPORARY VIEW counted AS
SELECT `key`, window_start, window_end, COUNT(*) AS cnt, MAX(ts) AS ts
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ets), {window}))
GROUP BY `key`, window_start, window_end;

INSERT INTO results (`key`, window_start, window_end, cnt, ts)
SELECT `key`, window_start, window_end, cnt, ts FROM counted;
