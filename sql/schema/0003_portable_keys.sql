-- One shape on every server from PostgreSQL 14: pending_change's key is a unique index over
-- coalesce(namespace, '') instead of UNIQUE NULLS NOT DISTINCT (PostgreSQL 15+), so the function
-- layer names one ON CONFLICT target everywhere. The same rows conflict: a cluster-scoped object's
-- namespace is NULL, and no namespace is named ''. Installs on PostgreSQL 14 have the index from
-- schema/pg14/0001_baseline.sql already. The table is empty outside a transaction writing to a
-- transactional resource table (its rows never outlive their transaction).
alter table omni_kube.pending_change
  drop constraint if exists pending_change_xact_resource_table_name_namespace_key;
create unique index if not exists pending_change_key
  on omni_kube.pending_change (xact, resource_table, name, coalesce(namespace, ''));
