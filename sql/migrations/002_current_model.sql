-- 002: choosing the model version the views report. A version becomes current when it is
-- promoted (latest promoted_at wins); an operator can pin one in current_model instead.

ALTER TABLE model_versions ADD COLUMN promoted_at TIMESTAMPTZ;

CREATE TABLE current_model (
    singleton      BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    model_version  VARCHAR NOT NULL,
    pinned_at      TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
    pinned_by      VARCHAR
);
