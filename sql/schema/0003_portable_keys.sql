-- One key on every server from PostgreSQL 14: a unique index over coalesce(namespace, ''), which
-- UNIQUE NULLS NOT DISTINCT (PostgreSQL 15+) cannot be on 14, so the function layer names one
-- ON CONFLICT target everywhere. The same rows conflict: a cluster-scoped object's namespace is
-- NULL, and no namespace is named ''. Installs on PostgreSQL 14 have the index from
-- schema/pg14/0001_baseline.sql already. On 15 and later the baseline's constraint stays beside it:
-- until the function layer is re-created, moments after this file commits, the previous release's
-- _pending_put still names the constraint's columns as its conflict target.
create unique index if not exists pending_change_key
  on omni_kube.pending_change (xact, resource_table, name, coalesce(namespace, ''));
