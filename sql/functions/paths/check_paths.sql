-- Checks API paths before they are sent: absolute, no whitespace or control characters, no . or
-- .. segments (which would change where the call goes).
create or replace function omni_kube._check_paths(paths text[]) returns void
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
declare
  p text;
begin
  if paths is null then
    raise exception 'omni_kube: paths must not be NULL' using errcode = '22004';
  end if;
  if array_ndims(paths) > 1 then
    raise exception 'omni_kube: paths must be a one-dimensional array, got % dimensions',
      array_ndims(paths) using errcode = '2202E';
  end if;
  foreach p in array paths loop
    if p is null then
      raise exception 'omni_kube: path must not be NULL' using errcode = '22004';
    end if;
    if left(p, 1) <> '/' then
      raise exception 'omni_kube: path "%" must start with /', p
        using errcode = '22023', hint = 'Give the API path, e.g. /api/v1/namespaces.';
    end if;
    if p ~ '[\s\x00-\x1f\x7f]' then
      raise exception 'omni_kube: path "%" contains whitespace or control characters', p
        using errcode = '22023', hint = 'URL-encode them, e.g. %%20 for a space.';
    end if;
    if p ~ '(^|/)\.\.?(/|\?|$)' then
      raise exception 'omni_kube: path "%" contains . or .. segments', p using errcode = '22023';
    end if;
  end loop;
end
$$;
