-- Raises the error of a single call (api() or watch()) that did not get an answer below 400. A
-- failed request raises its error_code, OKT01 (no HTTP answer) when it has none.
create or replace function omni_kube._raise_for(state text, status int2, response jsonb, error text,
                                                call text, error_code text)
  returns void
  language plpgsql stable set search_path = pg_catalog, pg_temp
  as $$
begin
  if state = 'done' then
    raise exception '%', coalesce(response ->> 'reason', 'HTTP ' || status)
      using errcode = 'OK' || lpad(status::text, 3, '0'),
        detail = coalesce(response ->> 'message', response #>> '{}', ''),
        hint = format('%s answered %s', call, status);
  end if;
  if state = 'failed' then
    raise exception 'omni_kube: %', error using errcode = coalesce(error_code, 'OKT01');
  end if;
  raise exception 'omni_kube: request %: %', state, error using errcode = 'OKW02';
end
$$;
