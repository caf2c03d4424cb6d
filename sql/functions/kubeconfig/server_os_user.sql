-- The operating-system user the database server runs as, for messages: its uid, and its name when
-- /etc/passwd has one; both NULL when it cannot be told (not Linux, or the caller cannot read
-- server files). Linux gives a process its own credentials in /proc/self/status, and a backend runs
-- as the postmaster's user. Nothing else of either file leaves this function.
create or replace function omni_kube._server_os_user(out name text, out uid text)
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  begin
    -- Uid: real, effective, saved, filesystem; files are opened as the effective one.
    uid := substring(omni_kube._server_file_text('/proc/self/status') from '(?n)^Uid:\s+\d+\s+(\d+)');
  exception when others then
    return;
  end;
  if uid is null then
    return;
  end if;
  begin
    name := substring(omni_kube._server_file_text('/etc/passwd')
                      from format('(?n)^([^:\s]+):[^:]*:%s:', uid));
  exception when others then
    name := null;
  end;
end
$$;
revoke all on function omni_kube._server_os_user() from public;
grant execute on function omni_kube._server_os_user() to omni_kube;
