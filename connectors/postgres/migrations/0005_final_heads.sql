-- ringtally 0005: a submission's final head (native/SPEC.md §14.3). After the
-- registrar's closing, once every votes partition has passed its broker time,
-- the workers sign the log's head as final: closed_ms (the closing's broker
-- time, ms) is in its signed bytes. NULL: not final. A final head replaces a
-- stored head of the same size (same root, or it is a fork).
ALTER TABLE log_heads ADD COLUMN closed_ms bigint;
