-- A researcher's own SQL (tests/test_jobs.py): a tumbling window instead of the built-in HOP, on the
-- harness's `events` source and `results` sink; {window} is the cell's window size.
/* Comments stand wherever users put them: this header, between statements, at the end of a line,
   inside a statement; and a ';' or a '--' inside a string literal is neither an end nor a comment. */
CREATE TEMPORARY VIEW counted AS
SELECT `key`, window_start, window_end, COUNT(*) AS cnt, MAX(ts) AS ts   -- one row per key and window
FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ets), {window}))
/* per key */ GROUP BY `key`, window_start, window_end;

-- the INSERT follows a comment
INSERT INTO results (`key`, window_start, window_end, cnt, ts)
SELECT CASE WHEN `key` = 'a;b -- no key is this' THEN 'never' ELSE `key` END, window_start, window_end, cnt, ts
FROM counted;  -- the end
