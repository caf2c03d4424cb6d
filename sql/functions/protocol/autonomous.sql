-- A value quoted for a libpq connection string.
create or replace function omni_kube._libpq_quote(value text) returns text
  language sql immutable strict set search_path = pg_catalog, pg_temp
  as $$ select '''' || replace(replace(value, '\', '\\'), '''', '\''') || '''' $$;

-- The autonomous connection's libpq string: the instance setting, else this server's own socket as
-- the installing role. Its session settings are fixed from the first statement on: a search_path
-- nothing can shadow, and no statement logging or activity tracking, because the queries carry
-- credentials as literals.
create or replace function omni_kube._loopback_connstr() returns text
  language sql stable
  set search_path = pg_catalog, pg_temp
  as $$
    select coalesce(
      (select value from omni_kube.instance_settings where name = 'loopback_connstr'),
      format('host=%s port=%s dbname=%s user=%s',
             omni_kube._libpq_quote(nullif(split_part(current_setting('unix_socket_directories'), ',', 1), '')),
             current_setting('port'), omni_kube._libpq_quote(current_database()),
             omni_kube._libpq_quote(current_user)))
      || ' application_name=omni_kube_autonomous options='
      || omni_kube._libpq_quote(concat_ws(' ',
           '-c search_path=pg_catalog,pg_temp', '-c track_activities=off',
           '-c log_statement=none', '-c log_min_duration_statement=-1',
           '-c log_min_duration_sample=-1', '-c log_statement_sample_rate=0',
           '-c log_transaction_sample_rate=0', '-c log_min_error_statement=panic',
           '-c synchronous_commit=off', '-c idle_session_timeout=0',
           '-c statement_timeout=0', '-c lock_timeout=0'))
  $$;

-- Runs `query` (which returns one jsonb) in this session's autonomous connection, committing at
-- once. The connection is opened on first use and kept; if it has died (server restart,
-- terminated backend) it is opened again and the query sent once more, which is why every query
-- sent here is idempotent.
-- (dblink is called directly, its schema spelled out when this is created, so that nothing on a
-- caller's search_path can stand in for it; SQL wrappers around it would be parsed and planned
-- again on every call.)
do $do$
begin
  execute format($f$
create or replace function omni_kube._autonomous(query text) returns jsonb
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $body$
declare
  connection constant text := 'omni_kube';
begin
  -- The usual case first, with one subtransaction (the exception block) rather than two.
  if coalesce(connection = any(%1$s.dblink_get_connections()), false) then
    begin
      return (select value from %1$s.dblink(connection, query) as t(value jsonb));
    exception when connection_exception then
      perform %1$s.dblink_disconnect(connection);
    end;
  end if;
  -- First use in this session, or the connection died: open it and send the query (again).
  begin
    perform %1$s.dblink_connect(connection, omni_kube._loopback_connstr());
    return (select value from %1$s.dblink(connection, query) as t(value jsonb));
  exception
    when sqlclient_unable_to_establish_sqlconnection or connection_exception then
      if coalesce(connection = any(%1$s.dblink_get_connections()), false) then
        perform %1$s.dblink_disconnect(connection);
      end if;
      raise exception 'omni_kube: the autonomous connection to this database failed'
        using errcode = 'OKA01',
          detail = sqlerrm,
          hint = 'The shim connects to its own database through the server''s unix socket as the installing (superuser) role. If that cannot work here, set a libpq string as that role: insert into omni_kube.instance_settings values (''loopback_connstr'', ''host=... user=...'').';
  end;
end
$body$;
  $f$, (select extnamespace::regnamespace::text from pg_catalog.pg_extension
        where extname = 'dblink'));
end
$do$;
revoke all on function omni_kube._autonomous(text) from public;

revoke all on function omni_kube._loopback_connstr() from public;
