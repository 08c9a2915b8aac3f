-- migrate:up
-- Unqualified names land in schema "billing": migrations run with search_path = billing, then the session's path.
CREATE TABLE customer (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE CHECK (email = lower(email)),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE customer;
