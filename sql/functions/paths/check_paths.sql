-- What is wrong with an API path, if anything (NULL: nothing): 'null', 'relative' (not absolute),
-- 'control' (whitespace or control characters), 'dot segment' (a . or .. segment, which would
-- change where the call goes). (No SET clause, and only qualified names: inlined into the test
-- of a single path in _call and api_async().) Callable by all, as _check_paths is: a member's
-- batch checks its paths with the member's rights.
create or replace function omni_kube._path_problem(p text) returns text
  language sql immutable parallel safe
  as $$
    select case when p is null then 'null'
                when pg_catalog.left(p, 1) operator(pg_catalog.<>) '/' then 'relative'
                when p operator(pg_catalog.~) '[\s\x00-\x1f\x7f]' then 'control'
                when p operator(pg_catalog.~) '(^|/)\.\.?(/|\?|$)' then 'dot segment'
           end
  $$;

-- Checks API paths before they are sent (see _path_problem), raising at the first bad one.
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
    case omni_kube._path_problem(p)
      when 'null' then
        raise exception 'omni_kube: path must not be NULL' using errcode = '22004';
      when 'relative' then
        raise exception 'omni_kube: path "%" must start with /', p
          using errcode = '22023', hint = 'Give the API path, e.g. /api/v1/namespaces.';
      when 'control' then
        raise exception 'omni_kube: path "%" contains whitespace or control characters', p
          using errcode = '22023', hint = 'URL-encode them, e.g. %20 for a space.';
      when 'dot segment' then
        raise exception 'omni_kube: path "%" contains . or .. segments', p using errcode = '22023';
      else
        null; -- a good path
    end case;
  end loop;
end
$$;
