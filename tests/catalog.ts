/**
 * A snapshot of what the SQL shim put into a database's catalog, and a readable diff of two
 * snapshots: for checking that an upgraded database is the same as a fresh install.
 *
 * Each object becomes one entry, keyed by its kind and name ("function omni_kube.api(text, ...)")
 * and described by text lines. Nothing that legitimately differs between two databases is in it:
 * no OIDs, relfilenodes, sequence positions or statistics; roles appear by name; an ACL left at its
 * default and the same ACL written out explicitly read alike; columns are listed in order, without
 * their attnum (a column dropped once leaves a gap). Rows of tables are not compared.
 *
 * @module
 */
import type postgres from "postgres";

/** Entries keyed by kind and name, each the object's description. */
export type Catalog = Map<string, string>;

/** What to take into a snapshot. */
export interface CatalogScope {
  /** Schemas whose objects are the shim's. */
  schemas: string[];
  /** Roles the shim creates (compared by their attributes and memberships). */
  roles: string[];
}

/** The shim's schemas and role. */
export const SHIM_SCOPE: CatalogScope = {
  schemas: ["omni_kube", "omni_kube_dblink"],
  roles: ["omni_kube"],
};

/**
 * SQL for an ACL as sorted `grantee=privilege[*]/grantor` items, names for OIDs. A NULL ACL means
 * the default for `kind` (an SQL expression giving acldefault's letter) and `owner`, or no
 * privileges when `kind` is null (column ACLs have no default).
 */
function acl(expression: string, kind: string | null, owner: string | null): string {
  // (aclexplode fails on an empty array: an ACL with no item becomes NULL, which has no rows.)
  const value = `case when ${expression} is null then ${
    kind === null ? "null" : `pg_catalog.acldefault((${kind})::"char", ${owner})`
  } when pg_catalog.cardinality(${expression}) > 0 then ${expression} end`;
  const role = (oid: string) =>
    `case when ${oid} = 0 then 'PUBLIC' else pg_catalog.pg_get_userbyid(${oid})::text end`;
  const item = `${role("a.grantee")} || '=' || a.privilege_type ||
                case when a.is_grantable then '*' else '' end || '/' || ${role("a.grantor")}`;
  return `(select coalesce(pg_catalog.string_agg(${item}, ', ' order by ${item}), '')
             from pg_catalog.aclexplode(${value}) a)`;
}

/** A statement returning (key, detail) rows, and what its parameters `$1`, `$2` are. */
interface Query {
  text: string;
  parameters: (keyof CatalogScope)[];
}

/** Joins a catalog row to its relation `column` and keeps it if that is in one of the schemas ($1). */
function inSchemas(column: string): string {
  return `join pg_catalog.pg_class c on c.oid = ${column}
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any($1)`;
}

const QUERIES: Record<string, Query> = {
  schemas: {
    text: `
    select 'schema ' || pg_catalog.quote_ident(n.nspname) as key,
           concat_ws(E'\\n', 'owner: ' || pg_catalog.pg_get_userbyid(n.nspowner),
                     'acl: ' || ${acl("n.nspacl", "'n'", "n.nspowner")}) as detail
      from pg_catalog.pg_namespace n where n.nspname = any($1)`,
    parameters: ["schemas"],
  },
  functions: {
    text: `
    select 'function ' || p.oid::pg_catalog.regprocedure::text as key,
           concat_ws(E'\\n', 'owner: ' || pg_catalog.pg_get_userbyid(p.proowner),
                     'acl: ' || ${acl("p.proacl", "'f'", "p.proowner")},
                     'security definer: ' || p.prosecdef,
                     'config: ' || coalesce(pg_catalog.array_to_string(p.proconfig, ', '), ''),
                     case when p.prokind = 'a' then 'aggregate'
                          else pg_catalog.pg_get_functiondef(p.oid) end) as detail
      from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname = any($1)`,
    parameters: ["schemas"],
  },
  relations: {
    text: `
    select case c.relkind when 'v' then 'view ' when 'm' then 'materialized view '
                          when 'S' then 'sequence ' when 'f' then 'foreign table '
                          else 'table ' end || c.oid::pg_catalog.regclass::text as key,
           concat_ws(E'\\n',
             'owner: ' || pg_catalog.pg_get_userbyid(c.relowner),
             'persistence: ' || c.relpersistence::text,
             'acl: ' || ${
      acl("c.relacl", "case when c.relkind = 'S' then 's' else 'r' end", "c.relowner")
    },
             'row security: ' || c.relrowsecurity || ', forced: ' || c.relforcerowsecurity,
             'options: ' || coalesce(pg_catalog.array_to_string(c.reloptions, ', '), ''),
             'replica identity: ' || c.relreplident::text,
             'inherits: ' || (select pg_catalog.string_agg(i.inhparent::pg_catalog.regclass::text, ', '
                                                               order by i.inhseqno)
                                    from pg_catalog.pg_inherits i where i.inhrelid = c.oid),
             case when c.relkind in ('v', 'm') then 'definition:' || E'\\n' || pg_catalog.pg_get_viewdef(c.oid) end,
             (select pg_catalog.string_agg(concat_ws(' ',
                       'column', pg_catalog.quote_ident(a.attname),
                       pg_catalog.format_type(a.atttypid, a.atttypmod),
                       case when a.attnotnull then 'not null' end,
                       case a.attidentity when 'a' then 'generated always as identity'
                                          when 'd' then 'generated by default as identity' end,
                       case when a.attgenerated = 's' then 'generated as' end,
                       'default ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid),
                       case when a.attcollation <> 0 and a.attcollation <> t.typcollation
                            then 'collate ' || a.attcollation::pg_catalog.regcollation::text end,
                       'compression=' || case a.attcompression when '' then 'default'
                                           else a.attcompression::text end,
                       'storage=' || a.attstorage::text,
                       'acl=' || ${acl("a.attacl", null, null)}),
                     E'\\n' order by a.attnum)
                from pg_catalog.pg_attribute a
                join pg_catalog.pg_type t on t.oid = a.atttypid
                left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
               where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped),
             (select concat_ws(E'\\n',
                       'sequence: ' || s.seqtypid::pg_catalog.regtype::text || ' start ' || s.seqstart ||
                         ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax ||
                         ' cache ' || s.seqcache || case when s.seqcycle then ' cycle' else '' end,
                       (select 'owned by: ' || pg_catalog.string_agg(
                                 dep.refobjid::pg_catalog.regclass::text || '.' ||
                                 pg_catalog.quote_ident(oa.attname) || ' (' || dep.deptype::text || ')', ', ')
                          from pg_catalog.pg_depend dep
                          join pg_catalog.pg_attribute oa
                            on oa.attrelid = dep.refobjid and oa.attnum = dep.refobjsubid
                         where dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                           and dep.objid = c.oid
                           and dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                           and dep.deptype::text in ('a', 'i')))
                from pg_catalog.pg_sequence s where s.seqrelid = c.oid)) as detail
      from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
     where n.nspname = any($1) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')`,
    parameters: ["schemas"],
  },
  indexes: {
    text: `
    select 'index ' || c.oid::pg_catalog.regclass::text as key,
           concat_ws(E'\\n', pg_catalog.pg_get_indexdef(c.oid),
                     'persistence: ' || c.relpersistence::text,
                     case when i.indisclustered then 'clustered' end,
                     case when i.indisreplident then 'replica identity' end,
                     case when not i.indisvalid then 'invalid' end) as detail
      from pg_catalog.pg_index i
      ${inSchemas("i.indexrelid")}`,
    parameters: ["schemas"],
  },
  constraints: {
    text: `
    select 'constraint ' || pg_catalog.quote_ident(con.conname) || ' on ' ||
             case when con.conrelid <> 0 then con.conrelid::pg_catalog.regclass::text
                  else 'domain ' || con.contypid::pg_catalog.regtype::text end as key,
           concat_ws(E'\\n', pg_catalog.pg_get_constraintdef(con.oid),
                     'validated: ' || con.convalidated) as detail
      from pg_catalog.pg_constraint con
      join pg_catalog.pg_namespace n on n.oid = con.connamespace
     where n.nspname = any($1)`,
    parameters: ["schemas"],
  },
  types: {
    text: `
    select case t.typtype when 'e' then 'enum ' when 'c' then 'composite type ' when 'd' then 'domain '
                          when 'r' then 'range ' when 'm' then 'multirange ' else 'type ' end ||
             t.oid::pg_catalog.regtype::text as key,
           concat_ws(E'\\n', 'owner: ' || pg_catalog.pg_get_userbyid(t.typowner),
             'acl: ' || ${acl("t.typacl", "'T'", "t.typowner")},
             case t.typtype
               when 'e' then 'labels: ' || (select pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel), ', '
                                                                          order by e.enumsortorder)
                                               from pg_catalog.pg_enum e where e.enumtypid = t.oid)
               when 'c' then (select pg_catalog.string_agg(
                                       'attribute ' || pg_catalog.quote_ident(a.attname) || ' ' ||
                                         pg_catalog.format_type(a.atttypid, a.atttypmod),
                                       E'\\n' order by a.attnum)
                                from pg_catalog.pg_attribute a
                               where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped)
               when 'd' then 'base: ' || pg_catalog.format_type(t.typbasetype, t.typtypmod) ||
                               case when t.typnotnull then ' not null' else '' end ||
                               coalesce(' default ' || t.typdefault, '')
             end) as detail
      from pg_catalog.pg_type t join pg_catalog.pg_namespace n on n.oid = t.typnamespace
     where n.nspname = any($1)
       -- A table's or view's row type goes with its relation; an array type with its element.
       and (t.typtype <> 'c' or (select c.relkind from pg_catalog.pg_class c where c.oid = t.typrelid) = 'c')
       and not exists (select from pg_catalog.pg_type e where e.typarray = t.oid)`,
    parameters: ["schemas"],
  },
  triggers: {
    text: `
    select 'trigger ' || pg_catalog.quote_ident(tg.tgname) || ' on ' ||
             tg.tgrelid::pg_catalog.regclass::text as key,
           pg_catalog.pg_get_triggerdef(tg.oid) || E'\\nenabled: ' || tg.tgenabled::text as detail
      from pg_catalog.pg_trigger tg
      ${inSchemas("tg.tgrelid")} and not tg.tgisinternal`,
    parameters: ["schemas"],
  },
  eventTriggers: {
    text: `
    select 'event trigger ' || pg_catalog.quote_ident(e.evtname) as key,
           concat_ws(E'\\n', 'on ' || e.evtevent, 'function: ' || e.evtfoid::pg_catalog.regprocedure::text,
                     'enabled: ' || e.evtenabled::text,
                     'tags: ' || coalesce(pg_catalog.array_to_string(e.evttags, ', '), '')) as detail
      from pg_catalog.pg_event_trigger e
      join pg_catalog.pg_proc p on p.oid = e.evtfoid
      join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname = any($1)`,
    parameters: ["schemas"],
  },
  rules: {
    text: `
    select 'rule ' || pg_catalog.quote_ident(r.rulename) || ' on ' ||
             r.ev_class::pg_catalog.regclass::text as key,
           pg_catalog.pg_get_ruledef(r.oid) as detail
      from pg_catalog.pg_rewrite r
      ${inSchemas("r.ev_class")} and r.rulename <> '_RETURN'`,
    parameters: ["schemas"],
  },
  policies: {
    text: `
    select 'policy ' || pg_catalog.quote_ident(pol.polname) || ' on ' ||
             pol.polrelid::pg_catalog.regclass::text as key,
           concat_ws(E'\\n', 'permissive: ' || pol.polpermissive, 'command: ' || pol.polcmd::text,
             'roles: ' || (select pg_catalog.string_agg(
                                    case when r = 0 then 'PUBLIC' else pg_catalog.pg_get_userbyid(r)::text end,
                                    ', ' order by case when r = 0 then 'PUBLIC'
                                                       else pg_catalog.pg_get_userbyid(r)::text end)
                             from pg_catalog.unnest(pol.polroles) r),
             'using: ' || pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
             'with check: ' || pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid)) as detail
      from pg_catalog.pg_policy pol
      ${inSchemas("pol.polrelid")}`,
    parameters: ["schemas"],
  },
  comments: {
    text: `
    select 'comment on ' || o.type || ' ' || o.identity as key, d.description as detail
      from pg_catalog.pg_description d
     cross join lateral pg_catalog.pg_identify_object(d.classoid, d.objoid, d.objsubid) o
     where d.objoid >= 16384 -- built-in objects have lower OIDs
       and (o.schema = any($1)
            or (d.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass and d.objoid in (
                  select n.oid from pg_catalog.pg_namespace n where n.nspname = any($1))))
    union all
    select 'comment on role ' || pg_catalog.quote_ident(r.rolname), d.description
      from pg_catalog.pg_shdescription d join pg_catalog.pg_roles r on r.oid = d.objoid
     where d.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass and r.rolname = any($2)`,
    parameters: ["schemas", "roles"],
  },
  // Whatever else lives in the schemas: compared by existence.
  otherObjects: {
    text: `
    select 'object ' || o.type || ' ' || o.identity as key, '' as detail
      from (select 'pg_catalog.pg_operator'::pg_catalog.regclass as classid, oid, oprnamespace as nsp from pg_catalog.pg_operator
            union all select 'pg_catalog.pg_collation'::pg_catalog.regclass, oid, collnamespace from pg_catalog.pg_collation
            union all select 'pg_catalog.pg_conversion'::pg_catalog.regclass, oid, connamespace from pg_catalog.pg_conversion
            union all select 'pg_catalog.pg_opclass'::pg_catalog.regclass, oid, opcnamespace from pg_catalog.pg_opclass
            union all select 'pg_catalog.pg_opfamily'::pg_catalog.regclass, oid, opfnamespace from pg_catalog.pg_opfamily
            union all select 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, oid, stxnamespace from pg_catalog.pg_statistic_ext
            union all select 'pg_catalog.pg_ts_config'::pg_catalog.regclass, oid, cfgnamespace from pg_catalog.pg_ts_config
            union all select 'pg_catalog.pg_ts_dict'::pg_catalog.regclass, oid, dictnamespace from pg_catalog.pg_ts_dict
            union all select 'pg_catalog.pg_ts_parser'::pg_catalog.regclass, oid, prsnamespace from pg_catalog.pg_ts_parser
            union all select 'pg_catalog.pg_ts_template'::pg_catalog.regclass, oid, tmplnamespace from pg_catalog.pg_ts_template) x
      join pg_catalog.pg_namespace n on n.oid = x.nsp
     cross join lateral pg_catalog.pg_identify_object(x.classid, x.oid, 0) o
     where n.nspname = any($1)`,
    parameters: ["schemas"],
  },
  extensions: {
    text: `
    select 'extension ' || pg_catalog.quote_ident(e.extname) as key,
           concat_ws(E'\\n', 'schema: ' || n.nspname, 'version: ' || e.extversion,
                     'owner: ' || pg_catalog.pg_get_userbyid(e.extowner)) as detail
      from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace
     where n.nspname = any($1)`,
    parameters: ["schemas"],
  },
  defaultPrivileges: {
    text: `
    select 'default privileges of ' || pg_catalog.pg_get_userbyid(d.defaclrole) || ' in schema ' ||
             n.nspname || ' on ' || d.defaclobjtype::text as key,
           ${acl("d.defaclacl", null, null)} as detail
      from pg_catalog.pg_default_acl d join pg_catalog.pg_namespace n on n.oid = d.defaclnamespace
     where n.nspname = any($1)`,
    parameters: ["schemas"],
  },
  // The shim grants on the database itself (CREATE, for members' schemas) and may set defaults.
  database: {
    text: `
    select 'this database' as key,
           concat_ws(E'\\n', 'acl: ' || ${acl("d.datacl", "'d'", "d.datdba")},
             'settings: ' || coalesce((select pg_catalog.array_to_string(s.setconfig, ', ')
                                         from pg_catalog.pg_db_role_setting s
                                        where s.setdatabase = d.oid and s.setrole = 0), '')) as detail
      from pg_catalog.pg_database d where d.datname = pg_catalog.current_database()`,
    parameters: [],
  },
  roles: {
    text: `
    select 'role ' || pg_catalog.quote_ident(r.rolname) as key,
           concat_ws(E'\\n',
             'superuser: ' || r.rolsuper || ', inherit: ' || r.rolinherit || ', create role: ' ||
               r.rolcreaterole || ', create db: ' || r.rolcreatedb || ', login: ' || r.rolcanlogin ||
               ', replication: ' || r.rolreplication || ', bypass rls: ' || r.rolbypassrls ||
               ', connection limit: ' || r.rolconnlimit,
             'member of: ' || coalesce((select pg_catalog.string_agg(pg_catalog.pg_get_userbyid(m.roleid)::text, ', '
                                                                     order by pg_catalog.pg_get_userbyid(m.roleid)::text)
                                          from pg_catalog.pg_auth_members m where m.member = r.oid), ''),
             'settings in this database: ' ||
               coalesce((select pg_catalog.array_to_string(s.setconfig, ', ')
                           from pg_catalog.pg_db_role_setting s
                           join pg_catalog.pg_database d on d.oid = s.setdatabase
                          where s.setrole = r.oid and d.datname = pg_catalog.current_database()), '')) as detail
      from pg_catalog.pg_roles r where r.rolname = any($1)`,
    parameters: ["roles"],
  },
};

/** Reads the shim's catalog in `sql`'s database, in one snapshot. */
export async function catalogSnapshot(
  sql: postgres.Sql<Record<string, never>>,
  scope: CatalogScope = SHIM_SCOPE,
): Promise<Catalog> {
  const catalog: Catalog = new Map();
  await sql.begin("isolation level repeatable read read only", async (tx) => {
    // Every name that is not pg_catalog's prints qualified, whatever the connection's path.
    await tx`set local search_path = pg_catalog`;
    for (const query of Object.values(QUERIES)) {
      const rows = await tx.unsafe(query.text, query.parameters.map((name) => scope[name]));
      for (const { key, detail } of rows) {
        let unique = key as string;
        for (let n = 2; catalog.has(unique); n++) unique = `${key} #${n}`;
        catalog.set(unique, detail ?? "");
      }
    }
  });
  return catalog;
}

/** The lines of `a` and `b` that differ, as `- ` and `+ ` lines in order (a longest common subsequence). */
function lineDiff(a: string[], b: string[]): string[] {
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      i++;
      j++;
    } else if (j >= b.length || (i < a.length && lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push(`- ${a[i++]}`);
    } else {
      out.push(`+ ${b[j++]}`);
    }
  }
  return out;
}

/** Changed lines shown per object; the rest are counted. */
const LINES_PER_OBJECT = 12;

/**
 * The objects that differ between `expected` and `actual`, one paragraph each ("only in", or
 * "differs" with the changed lines, `-` expected and `+` actual); an empty string when none does.
 */
export function diffCatalogs(
  expected: Catalog,
  actual: Catalog,
  labels: [expected: string, actual: string] = ["expected", "actual"],
): string {
  const report: string[] = [];
  let count = 0;
  const keys = [...new Set([...expected.keys(), ...actual.keys()])].sort();
  for (const key of keys) {
    const a = expected.get(key);
    const b = actual.get(key);
    if (a === b) continue;
    count++;
    if (b === undefined) {
      report.push(`  only in ${labels[0]}: ${key}`);
    } else if (a === undefined) {
      report.push(`  only in ${labels[1]}: ${key}`);
    } else {
      const lines = lineDiff(a.split("\n"), b.split("\n"));
      report.push(`  differs: ${key}`);
      for (const line of lines.slice(0, LINES_PER_OBJECT)) report.push(`      ${line}`);
      if (lines.length > LINES_PER_OBJECT) {
        report.push(`      ... and ${lines.length - LINES_PER_OBJECT} more changed lines`);
      }
    }
  }
  if (count === 0) return "";
  return `${count} object(s) differ (- ${labels[0]}, + ${labels[1]}):\n${report.join("\n")}`;
}
