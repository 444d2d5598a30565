-- 013: where each mapped org unit sat in a DHIS2's hierarchy when hibus check
-- --remote last looked (OrganisationUnit.path, "/ROOT/.../UID"), so that the next
-- check can say which were moved: their data then counts toward other parents.
-- One row per DHIS2 (its base URL) and org unit.
CREATE TABLE org_unit_paths (
    dhis2   text        NOT NULL,
    uid     text        NOT NULL,
    path    text        NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (dhis2, uid)
);
