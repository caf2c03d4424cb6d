-- Functions of earlier releases that this one no longer has, dropped by their signatures
-- (re-creating the rest never removes an object).

-- _call took the role to attribute requests to; it now takes it from the session.
drop function if exists omni_kube._call(name, text, text[], omni_kube.http_method[], jsonb[],
  boolean, text, text, omni_kube.client_certificate, text, int);
-- _raise_for and _transport_status take the failed request's error_code.
drop function if exists omni_kube._raise_for(text, int2, jsonb, text, text);
drop function if exists omni_kube._transport_status(text);

-- _watch's rows gained error_code, and it takes each watch's cluster.
drop function if exists omni_kube._watch(text[], text[], text[], int, text[], text[], text[], text,
  text, omni_kube.client_certificate, text);

-- _finish_requests took `announce` (a worker of the previous release calls the new one: the
-- parameter defaults to announcing, as before).
drop function if exists omni_kube._finish_requests(uuid, bigint[], int2[], text[], boolean[],
  boolean[], text[], text[], boolean);

-- _call and _insert_requests take each path's named cluster.
drop function if exists omni_kube._call(text, text[], omni_kube.http_method[], jsonb[], boolean,
  text, text, omni_kube.client_certificate, text, int);
drop function if exists omni_kube._insert_requests(uuid, name, name, int, timestamptz, text,
  omni_kube.http_method[], text[], jsonb[], boolean, text, text, int, boolean, text, text, text,
  text, bytea);

-- _list_collections takes each path's named cluster.
drop function if exists omni_kube._list_collections(text[], int);

-- The internals of resources, views and tables take the named cluster (NULL: none). The refresh
-- functions of tables without one still call _refresh_resource_tables(tables, paths): its
-- `clusters` defaults to none.
drop function if exists omni_kube._describe_resource(text, text);
drop function if exists omni_kube._delete_object(text);
drop function if exists omni_kube._send(omni_kube.resource_request);
drop function if exists omni_kube._create_resource_view(name, name, text, text, text, boolean, text,
  text);
drop function if exists omni_kube._create_resource_table(name, name, text, text, text, boolean, text,
  text, boolean);
drop function if exists omni_kube._refresh_resource_tables(text[], text[]);
drop function if exists omni_kube._resources_to_create(name, text[], boolean, boolean, text);

-- api_async() checks a server it is given itself (see _server_url_ok).
drop function if exists omni_kube._check_server(text);
