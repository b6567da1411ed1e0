"""PostgreSQL's roles of least privilege (CONTRACT.md section 10), set up by the superuser once per server.

| role | may |
|---|---|
| tshop_loader | own and write `raw` (the generator, `tshop ingest`); create and write its landing books in `sl` |
| tshop_transformer | read `raw`; own and write `dds`, `cdm`, `sl` (dbt, the run's books, alerts); erase the personal columns of `raw.customer` |
| tshop_reader | read `cdm` (ClickHouse's `postgresql()` reads of the marts, the reports) |
| tshop_airflow | own Airflow's metadata database |
| tshop_superset | own Superset's metadata database |

Nobody but the superuser may create a schema: the warehouse's schemas are made here with their owners, and
every writer creates its schema only when it is missing (`to_regnamespace`, so an existing one needs no
database privilege). Default privileges keep it so: a table dbt creates in `cdm` is readable by the reader,
one it creates in `dds` by nobody else; a table the loader creates in `raw` is readable by the transformer.

`template1` is prepared too, so a database created later on this server (a test's, a benchmark's) starts
with the same schemas, owners and default privileges. Passwords are generated per install into
`<state>/secrets.env`; running this again changes nothing but re-applies the passwords and grants.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from tshop.config import PG_ROLES, Settings

# schema: its owner (the others' rights are granted below)
SCHEMA_OWNERS = {"raw": "loader", "sl": "transformer", "dds": "transformer", "cdm": "transformer"}
# the tables of `sl` the loader writes (the landing books of tshop/ingest)
LOADER_SL_TABLES = ("landing_file", "erasure_log")
# What erasure (`tshop forget-customer`, as the transformer) may do in what the loader owns: rewrite the personal
# columns of raw.customer and keep sl.erasure_log. A privilege of this group role (no login), which the
# transformer is a member of; its name is fixed because datagen/raw.sql, which knows no settings, grants it
# when it creates those tables, and this setup when they came first.
ERASURE_ROLE = "tshop_erasure"
PERSONAL_COLUMNS = ("first_name", "last_name", "birth_date")
METADATA_OWNERS = {"airflow": "airflow_database", "superset": "superset_database"}


def ensure_roles(config: Settings) -> None:
    """Create (or update) the roles with their passwords, and prepare the warehouse and template1."""
    users = {role: config.pg_role_user(role) for role in PG_ROLES}
    with psycopg.connect(config.pg_dsn(database="postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute("select pg_advisory_lock(hashtext('tshop roles'))")
        for role in PG_ROLES:
            password = config.secret(f"TSHOP_PG_{role.upper()}_PASSWORD")
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (users[role],)).fetchone()
            verb = "alter" if exists else "create"
            conn.execute(
                sql.SQL(verb + " role {} with login nosuperuser nocreatedb nocreaterole password {}").format(
                    sql.Identifier(users[role]), sql.Literal(password)
                )
            )
        if not conn.execute("select 1 from pg_roles where rolname = %s", (ERASURE_ROLE,)).fetchone():
            conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(ERASURE_ROLE)))
        conn.execute(
            sql.SQL("grant {} to {}").format(
                sql.Identifier(ERASURE_ROLE), sql.Identifier(users["transformer"])
            )
        )
        for database in ("template1", config.pg_database):
            conn.execute(
                sql.SQL("grant connect on database {} to {}, {}, {}").format(
                    sql.Identifier(database),
                    *(sql.Identifier(users[r]) for r in ("loader", "transformer", "reader")),
                )
            )
    for database in ("template1", config.pg_database):
        prepare_database(config, database)


def prepare_database(config: Settings, database: str) -> None:
    """The warehouse's schemas with their owners, the grants between the roles and the default privileges
    that keep new relations readable by the right role only. Tables made before the roles existed (by the
    superuser) go to their schema's owner."""
    user = {role: sql.Identifier(config.pg_role_user(role)) for role in (*PG_ROLES, "admin")}
    with psycopg.connect(config.pg_dsn(database=database), autocommit=True, connect_timeout=10) as conn:
        for schema, owner in SCHEMA_OWNERS.items():
            conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
            conn.execute(sql.SQL("alter schema {} owner to {}").format(sql.Identifier(schema), user[owner]))
        _reown_tables(conn, config)
        _hand_over_what_the_superuser_makes(conn, config)
        statements = [
            # the transformer reads RAW, whatever the loader creates there
            "grant usage on schema raw to {transformer}",
            "grant select on all tables in schema raw to {transformer}",
            "alter default privileges for role {loader} in schema raw grant select on tables to {transformer}",
            # the loader keeps its landing books in sl; the transformer reads them
            "grant usage, create on schema sl to {loader}",
            "alter default privileges for role {loader} in schema sl grant select on tables to {transformer}",
            # the reader sees CDM, and only CDM
            "grant usage on schema cdm to {reader}",
            "grant select on all tables in schema cdm to {reader}",
            "alter default privileges for role {transformer} in schema cdm grant select on tables to {reader}",
            # dbt's unit tests and a few macros make relations in the profile's schema
            "grant usage, create on schema public to {transformer}",
            # what the superuser makes by hand (an operator, a test's fixture) follows the same rules
            "alter default privileges for role {admin} in schema raw grant all on tables to {loader}",
            "alter default privileges for role {admin} in schema raw grant select on tables to {transformer}",
            "alter default privileges for role {admin} in schema sl grant all on tables to {transformer}",
            "alter default privileges for role {admin} in schema dds grant all on tables to {transformer}",
            "alter default privileges for role {admin} in schema cdm grant all on tables to {transformer}",
            "alter default privileges for role {admin} in schema cdm grant select on tables to {reader}",
        ]
        for statement in statements:
            conn.execute(sql.SQL(statement).format(**user))
        conn.execute(
            sql.SQL(
                "do $$ begin if to_regclass('raw.customer') is not null then "
                "grant update ({columns}) on raw.customer to {erasure}; end if; "
                "if to_regclass('raw.rejected_row') is not null then "
                "grant update (row_data) on raw.rejected_row to {erasure}; end if; "
                "if to_regclass('sl.erasure_log') is not null then "
                "grant select, insert, update on sl.erasure_log to {erasure}; end if; end $$"
            ).format(
                columns=sql.SQL(", ").join(sql.Identifier(c) for c in PERSONAL_COLUMNS),
                erasure=sql.Identifier(ERASURE_ROLE),
            )
        )


# pg_class.relkind: the word ALTER ... OWNER TO takes for it
RELATION_KINDS = {
    "r": "table",
    "p": "table",
    "f": "foreign table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
}


def _owned_objects(conn: psycopg.Connection, schemas: list[str], functions: bool) -> list[tuple]:
    """(schema, name, kind, target, owner) of the relations of `schemas` (a sequence owned by a column goes with
    its table, so it is left out) and, with `functions`, their functions; `target` is the object as ALTER
    names it, `kind` the word it takes."""
    rows = [
        (schema, name, RELATION_KINDS[relkind], sql.Identifier(schema, name), owner)
        for schema, name, relkind, owner in conn.execute(
            """
            select n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner)
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = any(%s) and c.relkind::text = any(%s)
              and not exists (select from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i'))
            """,
            (schemas, list(RELATION_KINDS)),
        ).fetchall()
    ]
    if functions:
        rows += [
            (schema, signature, "function", sql.SQL(signature), owner)
            for schema, signature, owner in conn.execute(
                """
                select n.nspname, p.oid::regprocedure::text, pg_get_userbyid(p.proowner)
                from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where n.nspname = any(%s)
                """,
                (schemas,),
            ).fetchall()
        ]
    return rows


def _give(conn: psycopg.Connection, kind: str, target: sql.Composable, owner: str) -> None:
    conn.execute(sql.SQL("alter " + kind + " {} owner to {}").format(target, sql.Identifier(owner)))


def _reown_tables(conn: psycopg.Connection, config: Settings) -> None:
    """Relations and functions in the warehouse's schemas not owned by their schema's owner (made by the
    superuser before the roles existed) are given to it; the loader's landing books in sl to the loader.
    Functions too: `create or replace function` (raw.sql's trigger functions) needs their owner."""
    owners = {schema: config.pg_role_user(role) for schema, role in SCHEMA_OWNERS.items()}
    loader_tables = {("sl", table) for table in LOADER_SL_TABLES}
    for schema, name, kind, target, owner in _owned_objects(conn, list(SCHEMA_OWNERS), functions=True):
        wanted = config.pg_role_user("loader") if (schema, name) in loader_tables else owners[schema]
        if owner != wanted:
            _give(conn, kind, target, wanted)


def ensure_metadata_owner(config: Settings, role: str) -> None:
    """Airflow's or Superset's metadata database, owned by its own role, with what is already in it."""
    database = getattr(config, METADATA_OWNERS[role])
    owner = config.pg_role_user(role)
    if config.pg_role_password(role) is None:
        return  # no roles on this server: the database stays the DSN user's
    with psycopg.connect(config.pg_dsn(database="postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("alter database {} owner to {}").format(sql.Identifier(database), sql.Identifier(owner))
        )
    with psycopg.connect(config.pg_dsn(database=database), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("alter schema public owner to {}").format(sql.Identifier(owner)))
        for _, _, kind, target, current in _owned_objects(conn, ["public"], functions=False):
            if current != owner:
                _give(conn, kind, target, owner)
        for (type_name,) in conn.execute(
            "select t.typname from pg_type t join pg_namespace n on n.oid = t.typnamespace "
            "where n.nspname = 'public' and t.typtype = 'e' and pg_get_userbyid(t.typowner) <> %s",
            (owner,),
        ).fetchall():
            _give(conn, "type", sql.Identifier("public", type_name), owner)


def _hand_over_what_the_superuser_makes(conn: psycopg.Connection, config: Settings) -> None:
    """An event trigger: a table, view or function a superuser creates in a warehouse schema (an operator by
    hand, a test's fixture, `tshop ingest` run with the superuser's DSN) is given at once to the role that owns
    its kind, so the roles can still write, alter and replace it (`create table if not exists` and
    `alter table ... add column if not exists` in RAW's and SL's DDL need the owner). The roles' own
    creations are theirs already and pass untouched."""
    loader_tables = sql.SQL(", ").join(sql.Literal(f"sl.{table}") for table in LOADER_SL_TABLES)
    conn.execute(
        sql.SQL(
            """
            create or replace function public.tshop_hand_over_to_roles() returns event_trigger
            language plpgsql as $$
            declare
                made record;
            begin
                if not (select rolsuper from pg_roles where rolname = current_user) then
                    return;
                end if;
                for made in
                    select object_type, object_identity, schema_name
                    from pg_event_trigger_ddl_commands()
                    where schema_name in ('raw', 'sl', 'dds', 'cdm')
                        and object_type in ('table', 'view', 'materialized view', 'function')
                loop
                    execute format(
                        'alter %s %s owner to %I', made.object_type, made.object_identity,
                        case when made.object_identity in ({loader_tables}) then {loader}
                            else (select pg_get_userbyid(nspowner) from pg_namespace where nspname = made.schema_name)
                        end
                    );
                end loop;
            end
            $$
            """
        ).format(loader_tables=loader_tables, loader=sql.Literal(config.pg_role_user("loader")))
    )
    if not conn.execute(
        "select 1 from pg_event_trigger where evtname = 'tshop_hand_over_to_roles'"
    ).fetchone():
        conn.execute(
            "create event trigger tshop_hand_over_to_roles on ddl_command_end "
            "when tag in ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'CREATE VIEW', "
            "'CREATE MATERIALIZED VIEW', 'CREATE FUNCTION') "
            "execute function public.tshop_hand_over_to_roles()"
        )
