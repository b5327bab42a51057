-- ringtally 0002: the submission logs (native/SPEC.md §14).
--
-- Every leaf of every submission's log, as its Ballots on the ballots topic
-- record them (a ballot's own leaf, and the retraction leaf just before it when
-- it supersedes a vote), so a receipt's inclusion proof can be built here even
-- after the superseded ballot's row was replaced. Append-only, like audit_log.
CREATE TABLE log_leaves (
    submission_id    text        NOT NULL,
    leaf_index       bigint      NOT NULL CHECK (leaf_index >= 0),
    kind             text        NOT NULL CHECK (kind IN ('ballot', 'retraction')),
    vote_digest      text        NOT NULL,
    vote_id          uuid        NOT NULL,
    -- the votes-topic position of a ballot leaf's vote; NULL on a retraction leaf
    -- (the retracted vote's own ballot leaf, earlier in the log, has it)
    source_partition integer,
    source_offset    bigint,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT log_leaves_pkey PRIMARY KEY (submission_id, leaf_index)
);
CREATE INDEX log_leaves_vote_id_idx ON log_leaves (vote_id);

CREATE TRIGGER log_leaves_no_update_delete
    BEFORE UPDATE OR DELETE ON log_leaves
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- The latest signed tree head per submission (the compacted heads topic's
-- view); a row is only replaced by a larger tree.
CREATE TABLE log_heads (
    submission_id    text        PRIMARY KEY,
    tree_size        bigint      NOT NULL CHECK (tree_size >= 0),
    root_hash        text        NOT NULL,
    log_key          text        NOT NULL,
    -- the head's place in the batch of heads one signature covers (SPEC §14.3)
    batch_size       bigint      NOT NULL,
    batch_index      bigint      NOT NULL,
    batch_path       text[]      NOT NULL,
    signature        text        NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Disagreements a witness found (`ringtally witness`): a head whose root the
-- ballots topic does not give, two different leaves at one index, a head not
-- signed by the log key. One row per (submission, size, root, reason).
CREATE TABLE log_alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    submission_id    text        NOT NULL,
    tree_size        bigint      NOT NULL,
    root_hash        text        NOT NULL,
    reason           text        NOT NULL,
    detail           text        NOT NULL,
    detected_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT log_alerts_key UNIQUE (submission_id, tree_size, root_hash, reason)
);
