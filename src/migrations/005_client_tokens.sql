-- 005: bearer tokens of clients (hibus token new, list, revoke).
--
-- Only the SHA-256 of each token's secret is stored: a secret is 256 random bits,
-- so a fast hash is as strong as a slow one here, and nothing in this table lets
-- anyone use a token. A revoked token stays, with revoked_at, so that its id still
-- explains old log lines.
CREATE TABLE client_tokens (
    id          text        PRIMARY KEY,
    client      text        NOT NULL,
    secret_hash bytea       NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX client_tokens_client ON client_tokens (client, created_at);
