-- Lists several collections at once: the pages of all of them are fetched in parallel (one batch
-- api() call per round), and each object comes back with the index of its path. List items lack
-- apiVersion and kind; they are filled in from the list, as kubectl does. `clusters`: as for
-- api(paths, clusters => ...), one per path; NULL: the caller's settings.
create or replace function omni_kube._list_collections(paths text[], page_size int default 500,
                                                       clusters text[] default null)
  returns table (path_index int, object jsonb)
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
declare
  pending_index int[] := array(select generate_series(1, cardinality(paths)));
  pending_path text[];
  pending_cluster text[];
  next_index int[];
  next_path text[];
  page record;
  continue_token text;
  -- What a failure names: the path, and its cluster when it has one.
  what text;
begin
  if clusters is not null and (array_ndims(clusters) > 1 or cardinality(clusters) <> cardinality(paths)) then
    raise exception 'omni_kube: % clusters for % paths', cardinality(clusters), cardinality(paths)
      using errcode = '2202E';
  end if;
  pending_path := array(select omni_kube._append_query(p, 'limit=' || page_size) from unnest(paths) p);
  while cardinality(pending_path) > 0 loop
    next_index := '{}';
    next_path := '{}';
    pending_cluster := array(select clusters[i] from unnest(pending_index) i);
    for page in select b.response, b.status, b.n
                  from omni_kube.api(pending_path,
                                     clusters => case when clusters is not null
                                                      then pending_cluster end::omni_kube.cluster_names)
                       with ordinality b(response, status, n) loop
      what := 'GET ' || pending_path[page.n] || coalesce(' on cluster ' || pending_cluster[page.n], '');
      if page.status = 0 then
        -- (The Status of a failed call names a limit of the worker's by its reason. Its message
        -- is all a failure says, so it gets the cluster's name.)
        perform omni_kube._raise_for('failed', page.status, null,
                                     coalesce('cluster "' || pending_cluster[page.n] || '": ', '')
                                       || (page.response ->> 'message'), what,
                                     case page.response ->> 'reason'
                                       when 'ResponseTooLarge' then 'OKL01'
                                       when 'TimeoutTooLong' then 'OKL02' end);
      elsif page.status >= 400 then
        if page.status = 410 then
          -- A list that outlives its continue token (etcd compacted it) cannot be resumed.
          raise exception 'omni_kube: the listing of % expired before its last page',
                          paths[pending_index[page.n]] || coalesce(' on cluster ' || pending_cluster[page.n], '')
            using errcode = 'OK410', detail = coalesce(page.response ->> 'message', ''),
              hint = 'The collection changed faster than it was read; list it again.';
        end if;
        perform omni_kube._raise_for('done', page.status, page.response, null, what, null);
      end if;
      if jsonb_typeof(page.response) is distinct from 'object' then
        -- A body jsonb cannot hold is kept as text (omni_kube._response_jsonb): its items would
        -- be none, silently.
        raise exception 'omni_kube: the answer to % is JSON that PostgreSQL cannot hold as jsonb', what
          using errcode = '22P05',
            hint = 'An object holds what jsonb refuses (a \u0000 in a string, for one); api() returns such an answer as text.';
      end if;
      return query
        select pending_index[page.n],
               case when item ? 'kind' then item
                    else item || jsonb_build_object('apiVersion', page.response -> 'apiVersion',
                                                    'kind', regexp_replace(page.response ->> 'kind', 'List$', ''))
               end
          from jsonb_array_elements(page.response -> 'items') item;
      continue_token := nullif(page.response #>> '{metadata,continue}', '');
      if continue_token is not null then
        next_index := next_index || pending_index[page.n];
        next_path := next_path || omni_kube._append_query(paths[pending_index[page.n]],
                                    'limit=' || page_size, 'continue=' || omni_kube._url_encode(continue_token));
      end if;
    end loop;
    pending_index := next_index;
    pending_path := next_path;
  end loop;
end
$$;
grant execute on function omni_kube._list_collections(text[], int, text[]) to omni_kube;
