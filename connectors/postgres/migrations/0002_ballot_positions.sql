-- ringtally 0002: ballots by their votes-topic position.
--
-- The sink checks that each votes-topic position has one outcome: a ballot
-- arriving where a rejection is stored, or a rejection where a ballot is
-- (issue 16), is a conflict and is dead-lettered. Rejections are unique by
-- position already; this index makes the ballot side of that lookup cheap.
CREATE INDEX ballots_source_idx ON ballots (source_partition, source_offset);
