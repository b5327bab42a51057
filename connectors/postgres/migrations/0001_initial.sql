-- ringtally 0001: the sink's tables.
--
-- Applied by `ringtally db migrate` inside the configured schema: the runner
-- sets search_path to that schema (and only it), so every name below is
-- unqualified and lands there. Never edit this file once applied anywhere:
-- the runner refuses a migration whose checksum changed; add 0002_... instead.

-- Counted votes. Unique by vote_id, and by (submission_id, key_image): the
-- second unique index is also the "ballots by submission" index.
CREATE TABLE ballots (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vote_id          uuid        NOT NULL,
    submission_id    text        NOT NULL,
    key_image        text        NOT NULL,
    vote_type        text        NOT NULL CHECK (vote_type IN ('approve', 'reject', 'flag', 'escalate')),
    ring_id          text        NOT NULL,
    epoch            bigint      NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ballots_vote_id_key UNIQUE (vote_id),
    CONSTRAINT ballots_submission_key_image_key UNIQUE (submission_id, key_image)
);

-- Messages not counted. The original votes-topic position is the identity:
-- it is what a replay reproduces.
CREATE TABLE rejections (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vote_id          uuid,
    token_id         text,
    reason           text        NOT NULL,
    detail           text        NOT NULL,
    payload_b64      text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rejections_source_key UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX rejections_reason_idx ON rejections (reason, id);
CREATE INDEX rejections_vote_id_idx ON rejections (vote_id) WHERE vote_id IS NOT NULL;

-- The latest tally per submission; a row is only replaced by a higher version.
CREATE TABLE tallies (
    submission_id    text        PRIMARY KEY,
    approve          integer     NOT NULL CHECK (approve >= 0),
    reject           integer     NOT NULL CHECK (reject >= 0),
    flag             integer     NOT NULL CHECK (flag >= 0),
    escalate         integer     NOT NULL CHECK (escalate >= 0),
    total            integer     NOT NULL CHECK (total >= 0),
    decision         text        NOT NULL CHECK (decision IN ('PENDING', 'APPROVED', 'REJECTED', 'ESCALATED')),
    rules_version    text        NOT NULL,
    version          bigint      NOT NULL CHECK (version >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tallies_decision_idx ON tallies (decision);

-- Submissions whose decision became ESCALATED: the first escalated tally
-- (lowest version) and the latest one. Times are the tallies topic's record
-- timestamps, so a replay writes the same values.
CREATE TABLE escalations (
    submission_id       text        PRIMARY KEY,
    first_version       bigint      NOT NULL,
    first_escalated_at  timestamptz NOT NULL,
    latest_version      bigint      NOT NULL,
    latest_escalated_at timestamptz NOT NULL,
    latest_total        integer     NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now()
);

-- The hash-chained audit trail, append-only (see the triggers below).
-- Every column but recorded_at is a field of models.audit.AuditEvent, so
-- `ringtally audit verify` can recompute each hash from the row alone.
CREATE TABLE audit_log (
    chain            text        NOT NULL,
    sequence         bigint      NOT NULL CHECK (sequence >= 1),
    prev_hash        text        NOT NULL,
    hash             text        NOT NULL,
    kind             text        NOT NULL,
    vote_id          uuid,
    submission_id    text,
    key_image        text,
    reason           text,
    decision         text,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_log_pkey PRIMARY KEY (chain, sequence)
);
CREATE INDEX audit_log_submission_idx ON audit_log (submission_id) WHERE submission_id IS NOT NULL;

-- The database itself refuses to change or remove audit rows, whoever asks
-- (short of a superuser disabling the triggers, which verify then catches).
CREATE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit events are never changed; append a new event instead';
END;
$$;
CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Records the sink could not store (undecodable, or contradicting a stored
-- row: an audit fork, a ballot colliding with another). Written in the same
-- transaction as the offsets that skip them; also copied to <prefix>.sink-dlq.
CREATE TABLE sink_dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    reason           text        NOT NULL,
    detail           text        NOT NULL,
    key              bytea,
    value            bytea,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sink_dead_letters_source_key UNIQUE (source_topic, source_partition, source_offset)
);

-- Where the sink resumes: the next offset to read per partition, written in
-- the same transaction as the rows consumed up to it.
CREATE TABLE sink_offsets (
    topic            text        NOT NULL,
    partition        integer     NOT NULL CHECK (partition >= 0),
    next_offset      bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sink_offsets_pkey PRIMARY KEY (topic, partition)
);
