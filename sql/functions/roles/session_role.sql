-- The role a session acts as: SET ROLE's, else the login's. A member cannot pretend to be another
-- (SET ROLE takes membership), and a SECURITY DEFINER function does not change it.
create or replace function omni_kube._session_role() returns name
  language sql stable
  set search_path = pg_catalog, pg_temp
  as $$
    select case when current_setting('role') = 'none' then session_user
                else current_setting('role')::name end
  $$;
grant execute on function omni_kube._session_role() to omni_kube;
