-- 002: what the pipeline found and what the targets said, kept with the rows.

-- Per attempt, mediator-specific facts: a DHIS2 import summary (counts and
-- every conflict), or an OpenHIM mediator's status, orchestrations and properties.
ALTER TABLE attempts ADD COLUMN details jsonb;

-- Per transaction: why it was rejected (reader, mapping and quality problems),
-- or what was delivered with reservations (skipped unmapped codes, quality
-- warnings): {"problems": [...], "skipped": [...], "warnings": [...]}.
ALTER TABLE transactions ADD COLUMN problems jsonb;
