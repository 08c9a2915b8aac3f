-- migrate:up
-- Queues are rows, never DDL: every queue shares minipaas.messages.
CREATE SCHEMA IF NOT EXISTS minipaas;

-- waiting: behind an earlier message with the same ordering key; ready: deliverable from ready_at, unless
-- leased (lease_until ahead); done: acked and kept for the queue's retention; dead: dead-lettered.
CREATE TYPE minipaas.message_state AS ENUM ('waiting', 'ready', 'done', 'dead');

CREATE TABLE minipaas.queues (
    queue_id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text NOT NULL UNIQUE,
    visibility_timeout  interval NOT NULL DEFAULT interval '30 seconds'
                        CHECK (visibility_timeout > interval '0'),
    max_attempts        integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1),
    backoff_base        interval NOT NULL DEFAULT interval '1 second' CHECK (backoff_base >= interval '0'),
    backoff_max         interval NOT NULL DEFAULT interval '15 minutes' CHECK (backoff_max >= backoff_base),
    backoff_jitter      double precision NOT NULL DEFAULT 0.2 CHECK (backoff_jitter BETWEEN 0 AND 1),
    -- NULL: dead messages stay in this queue (state dead) until redriven; else they move to that queue.
    dead_letter_queue   text,
    -- '0': acked messages are deleted; else they are kept (state done) this long.
    retention           interval NOT NULL DEFAULT interval '0' CHECK (retention >= interval '0'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- Until when consumers are known to wait for messages: a short dequeue sets it 30 s ahead, a full batch
    -- clears it. Enqueues NOTIFY only while it lies ahead, because NOTIFY serialises committing transactions
    -- on a cluster-wide lock.
    consumers_idle_until timestamptz
);

-- When each queue last sent a NOTIFY (at most one per 50 ms). Unlogged: it is a throttle, not data; after a
-- crash the rows are recreated on demand.
CREATE UNLOGGED TABLE minipaas.queue_wakeups (
    queue_id     integer PRIMARY KEY,
    notified_at  timestamptz NOT NULL DEFAULT '-infinity'
);

-- No foreign key to queues: its key-share row lock on every insert would make enqueuers contend on the
-- queue's row. queue_drop deletes a queue's messages itself.
--
-- A lease changes only columns that no index covers (lease_token, lease_until, attempts, leased_at), and the
-- fillfactor leaves room on each page: a dequeue or a lease extension is a HOT update that writes no index
-- entry. The price: a leased message keeps its place in the dequeue index, and dequeues step over it.
CREATE TABLE minipaas.messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue_id        integer NOT NULL,
    state           minipaas.message_state NOT NULL,
    priority        smallint NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0,
    ready_at        timestamptz NOT NULL,
    lease_token     bigint,
    lease_until     timestamptz,
    enqueued_at     timestamptz NOT NULL,
    leased_at       timestamptz,
    finished_at     timestamptz,
    dedup_key       text,
    ordering_key    text,
    payload         jsonb NOT NULL,
    errors          jsonb
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.05,
        autovacuum_analyze_scale_factor = 0.02);

-- The dequeue index: ready messages (leased or not) in delivery order: lower priority number first, then the
-- time they became ready.
CREATE INDEX messages_deliver_idx ON minipaas.messages (queue_id, priority, ready_at, id)
    WHERE state = 'ready';
-- A dedup key is live while its message is pending or in flight.
CREATE UNIQUE INDEX messages_dedup_idx ON minipaas.messages (queue_id, dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('waiting', 'ready');
-- Ordering lanes: the active messages of one ordering key, in order.
CREATE INDEX messages_lane_idx ON minipaas.messages (queue_id, ordering_key, id)
    WHERE ordering_key IS NOT NULL AND state IN ('waiting', 'ready');
CREATE INDEX messages_dead_idx ON minipaas.messages (queue_id, id) WHERE state = 'dead';
CREATE INDEX messages_done_idx ON minipaas.messages (queue_id, finished_at) WHERE state = 'done';

-- migrate:down
DROP TABLE minipaas.queue_wakeups;
DROP TABLE minipaas.messages;
DROP TABLE minipaas.queues;
DROP TYPE minipaas.message_state;
-- The up part created the schema; it goes last, and only if nothing else was put in it.
DROP SCHEMA minipaas;
