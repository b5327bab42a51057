-- ringtally 0004: refusals of well-formed votes are leaves of their submission's log
-- (native/SPEC.md §14.1): kind 'rejection', whose leaf bytes end with the reason code.
-- Their rows come from the Rejections that carry a leaf_index; source_partition and
-- source_offset are the refused vote's votes-topic position.
ALTER TABLE log_leaves DROP CONSTRAINT log_leaves_kind_check;
ALTER TABLE log_leaves ADD CONSTRAINT log_leaves_kind_check
    CHECK (kind IN ('ballot', 'retraction', 'rejection'));
ALTER TABLE log_leaves ADD COLUMN reason text;
ALTER TABLE log_leaves ADD CONSTRAINT log_leaves_reason_check
    CHECK ((kind = 'rejection') = (reason IS NOT NULL));
