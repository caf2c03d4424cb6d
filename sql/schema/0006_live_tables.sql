-- Live tables: tables of a member's, kept current by a worker's informer (list, then watch from
-- the list's resourceVersion; relist on 410). The table is the store; this is the registry of
-- what each one mirrors and how far its mirror has got.

create table omni_kube.live_registry (
  id bigint generated always as identity primary key,
  -- The member's table (its owner's rights write it). Its row goes when the table is dropped
  -- (omni_kube._live_dropped, an event trigger), in the dropping transaction, so an oid reused
  -- by a later table never reaches a worker.
  relation oid not null unique,
  group_version text not null,
  resource text not null,
  namespace text,
  label_selector text,
  field_selector text,
  -- The collection watched, selectors included (omni_kube._list_path).
  path text not null,
  -- syncing: the first list (or a relist) is under way; live: the table is the server's state as
  -- of resource_version; backoff: the last attempt failed (last_error) and is retried.
  state text not null default 'syncing' check (state in ('syncing', 'live', 'backoff')),
  -- Where the next watch resumes: the version the table's rows are current to.
  resource_version text,
  objects bigint not null default 0,
  synced_at timestamptz,
  last_event_at timestamptz,
  relists int not null default 0,
  last_error text,
  -- The one worker mirroring it; another takes it once this one is no longer alive.
  worker_id uuid,
  -- The API server it mirrors: the own cluster of the first worker that took it. Only workers
  -- whose own cluster is that server take it after, so that it never mirrors another cluster.
  server text,
  -- The name of the table its writer (omni_kube_live.write_<id>) was made for.
  writer_target text,
  created_at timestamptz not null default now()
);
create index live_registry_worker on omni_kube.live_registry (worker_id);
revoke all on omni_kube.live_registry from public;

-- The live tables' writers (omni_kube._live_writer), each owned by its table's owner, where no
-- member may reach them.
create schema omni_kube_live;
revoke all on schema omni_kube_live from public;
