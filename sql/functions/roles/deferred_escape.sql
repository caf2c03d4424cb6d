-- Code a member writes (a live table's triggers, an async call's callback) runs inside a SECURITY
-- DEFINER function of theirs, where SET ROLE is refused, and its deferred triggers are fired there
-- (SET CONSTRAINTS ALL IMMEDIATE). A deferrable trigger whose code is not a superuser's, deferred
-- again by such code, would still fire at commit, when the role could be taken back. This names
-- one that `member`'s code could reach, if any, so that its work is refused before it commits: it
-- reaches the tables the member may write, and those a role owning a SECURITY DEFINER function may
-- write (any code may call one). A deferrable trigger elsewhere stops nobody.
create or replace function omni_kube._deferred_escape(member name) returns text
  language sql stable
  set search_path = pg_catalog, pg_temp
  as $$
    select format('%s on %s', t.tgname, t.tgrelid::regclass)
      from pg_trigger t
      join pg_proc p on p.oid = t.tgfoid
      join pg_roles r on r.oid = p.proowner
     where t.tgdeferrable and not t.tgisinternal and not r.rolsuper
       and (has_table_privilege(member, t.tgrelid, 'INSERT, UPDATE, DELETE, TRUNCATE')
            or exists (select from pg_proc d join pg_roles dr on dr.oid = d.proowner
                        where d.prosecdef and not dr.rolsuper
                          and has_table_privilege(dr.oid, t.tgrelid, 'INSERT, UPDATE, DELETE, TRUNCATE')))
     limit 1
  $$;
revoke all on function omni_kube._deferred_escape(name) from public;
