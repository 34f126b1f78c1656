-- A sample CRM database for `docker compose up` (docker/bridge.yaml, like config/bridge.yaml, reads it).
-- Run once by the postgres image's entrypoint (psql -v ON_ERROR_STOP=1, as the superuser, in the
-- POSTGRES_DB database) when the data volume is first initialised. Plain SQL only: no psql
-- meta-commands, so scripts/validate-deploy.sh can apply it with any client.

CREATE SCHEMA crm;

CREATE TABLE crm.customer_profile (
  cust_no      text PRIMARY KEY,
  mobile       text,
  wx_openid    text,
  wx_unionid   text,
  "Group Names" text
);
-- DELETEs must carry the identity and groups columns, not just the key (REPLICA IDENTITY FULL).
ALTER TABLE crm.customer_profile REPLICA IDENTITY FULL;

CREATE TABLE crm.member_group (
  id         bigserial PRIMARY KEY,
  member_id  text NOT NULL,
  group_name text NOT NULL
);
ALTER TABLE crm.member_group REPLICA IDENTITY FULL;

-- The bridge's login. It needs:
--   REPLICATION               to create the slot and stream (pgoutput);
--   CREATE on the database    for its status schema (tuzhan_sync) and the publication;
--   USAGE + SELECT on crm     for the initial snapshot and backfills;
--   ownership of the tables   because PostgreSQL only lets a table's owner add it to a
--                             publication (CREATE PUBLICATION docs). The tables belong to the
--                             crm_owner role and the bridge is a member of it. Where that is too
--                             much, a DBA creates the publication `tuzhan_cdc` itself instead.
-- Demo credentials: change the password for anything but a local demo.
CREATE ROLE crm_owner NOLOGIN;
ALTER SCHEMA crm OWNER TO crm_owner;
ALTER TABLE crm.customer_profile OWNER TO crm_owner;
ALTER TABLE crm.member_group OWNER TO crm_owner;

CREATE ROLE tuzhan_cdc WITH LOGIN REPLICATION PASSWORD 'tuzhan_cdc';
GRANT crm_owner TO tuzhan_cdc;
DO $$
BEGIN
  EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO tuzhan_cdc', current_database());
END
$$;
GRANT USAGE ON SCHEMA crm TO tuzhan_cdc;
GRANT SELECT ON ALL TABLES IN SCHEMA crm TO tuzhan_cdc;

-- Sample rows: present before the bridge first starts, so its snapshot has something to sync.
INSERT INTO crm.customer_profile (cust_no, mobile, wx_openid, wx_unionid, "Group Names") VALUES
  ('C0001', '13800000001', 'o-openid-0001', 'u-unionid-0001', 'vip,newsletter'),
  ('C0002', '13800000002', 'o-openid-0002', NULL,             'newsletter'),
  ('C0003', '13800000003', NULL,            NULL,             'vip'),
  ('C0004', NULL,          'o-openid-0004', 'u-unionid-0004', 'trial,北京'),
  ('C0005', '13800000005', NULL,            NULL,             NULL);

INSERT INTO crm.member_group (member_id, group_name) VALUES
  ('C0001', 'vip'),
  ('C0001', 'spring-campaign'),
  ('C0002', 'newsletter'),
  ('C0003', 'vip'),
  ('C0004', '上海门店');
