-- migrate:up
-- Streams are rows, never DDL: every stream shares minipaas.stream_events.
CREATE TABLE minipaas.streams (
    stream_id        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    partitions       integer NOT NULL DEFAULT 1 CHECK (partitions BETWEEN 1 AND 256),
    -- Retention, applied by stream_trim / maintain: NULL keeps events forever.
    retention_age    interval CHECK (retention_age > interval '0'),
    retention_count  bigint CHECK (retention_count > 0),
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- event_offset = (publishing transaction's id) * 2^20 + (n-th event that transaction published).
-- Offsets therefore follow transaction-id order, and a reader that stops below the oldest transaction
-- still in progress never skips an event that commits later (see stream_consume).
CREATE TABLE minipaas.stream_events (
    stream_id     integer NOT NULL,
    partition     integer NOT NULL,
    event_offset  bigint NOT NULL,
    key           text,
    key_version   bigint,
    dedup_id      text,
    published_at  timestamptz NOT NULL,
    payload       jsonb NOT NULL,
    PRIMARY KEY (stream_id, partition, event_offset)
) WITH (autovacuum_vacuum_insert_scale_factor = 0.05);

-- Per-key versions for optimistic concurrency and per-key reads.
CREATE UNIQUE INDEX stream_events_key_idx ON minipaas.stream_events (stream_id, key, key_version)
    WHERE key IS NOT NULL;
CREATE UNIQUE INDEX stream_events_dedup_idx ON minipaas.stream_events (stream_id, dedup_id)
    WHERE dedup_id IS NOT NULL;

-- Committed offsets of consumer groups, one row per partition.
CREATE TABLE minipaas.stream_group_offsets (
    stream_id         integer NOT NULL,
    group_name        text NOT NULL,
    partition         integer NOT NULL,
    committed_offset  bigint NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, group_name, partition)
);

-- migrate:down
DROP TABLE minipaas.stream_group_offsets;
DROP TABLE minipaas.stream_events;
DROP TABLE minipaas.streams;
