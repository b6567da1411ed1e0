"""Who may do what on ClickHouse: three logins, and how the local endpoint makes them hold.

| login | variable (default) | may |
|---|---|---|
| admin | TSHOP_CLICKHOUSE_USER (`default`) | everything |
| writer | TSHOP_CLICKHOUSE_WRITER_USER (`tshop_writer`) | read and write `cdm` and `events` (create, insert, alter, drop, rename, their temporary tables and dbt's `__dbt_tmp` relations), read the `system` tables but the access ones, the table functions the pipeline reads through (`file`, `s3`, `url`, `postgresql`, ...); no access management, no KILL, no SYSTEM |
| reader | TSHOP_CLICKHOUSE_READER_USER (`tshop_reader`) | SELECT from `cdm` and `events` (its default database: `cdm`), the few `system` tables a client reads to connect and list columns (READER_SYSTEM_TABLES), generator table functions (numbers, zeros, values, ...); nothing else: settings profile `readonly = 2` |

Each has its own password (generated per install in `<state>/secrets.env`, the variables
TSHOP_CLICKHOUSE_PASSWORD, TSHOP_CLICKHOUSE_WRITER_PASSWORD, TSHOP_CLICKHOUSE_READER_PASSWORD override them).

On a real ClickHouse server these are ClickHouse's own users, roles and grants: `clickhouse_users_sql()` writes
them as ClickHouse SQL and `ensure_clickhouse_users()` applies them to an external server.

On the local endpoint (chDB, ClickHouse as a library: clickhouse-local's engine) they cannot be: clickhouse-local
has no writable access storage (CREATE USER and CREATE ROLE fail with ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND),
and every query of the process runs as `default` whatever user a connection names (users of a users.xml are
loaded with their grants but never applied; EXECUTE AS is off). So the work is split:

- **chDB enforces** the reader's settings profile: every connection of the reader gets `readonly = 2` after
  the request's own settings. chDB then refuses every write (INSERT, CREATE, DROP, ALTER, OPTIMIZE, SYSTEM:
  code 164 READONLY) and any change of `readonly` itself (SET, a SETTINGS clause or a URL parameter), while
  the other settings clients send still apply.
- **the endpoint enforces** what chDB cannot: authentication per request against the three logins (code 516
  AUTHENTICATION_FAILED, as ClickHouse answers a wrong or missing password); sessions and pooled connections
  that belong to one login only; and the grants. A query of the writer or the reader is parsed by ClickHouse's
  own parser first (`EXPLAIN AST`, about a millisecond, on a connection of its own; the admin's queries are not
  parsed) and refused with ClickHouse's code 497 ACCESS_DENIED when it names a table of a database the login
  has no grant on (FROM, JOIN, IN, subqueries, CREATE/INSERT/ALTER/DROP/RENAME targets, the request's
  `database`), a table function outside the login's list, a function reading files or dictionaries (`file`,
  `dictGet...`, `joinGet`) for the reader, or a statement kind the login may not run (the reader: anything but
  SELECT, SHOW, DESCRIBE, EXISTS, EXPLAIN, SET, USE; the writer: access management, KILL, SYSTEM, BACKUP,
  dictionaries). The reader's non-read statements are refused by the endpoint before chDB sees them, so
  `readonly = 2` is the second wall, not the only one.

What the endpoint does not do that a server would: it does not hide the names of other databases' tables in
`system.tables`/`system.columns`/`system.databases` (their data stays unreadable), it keeps no quotas, and the
admin is not parsed at all.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

ACCESS_DENIED = 497
AUTHENTICATION_FAILED = 516
READONLY = 164

# the databases the writer and the reader have grants on
DATA_DATABASES = frozenset({"cdm", "events"})
# system tables a client reads to connect, list databases, tables and columns, and name functions
READER_SYSTEM_TABLES = frozenset({
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "databases", "tables", "columns", "settings",
    "functions", "data_type_families", "table_engines", "table_functions", "formats", "time_zones",
    "build_options", "collations", "aggregate_function_combinators",
})  # fmt: skip
# system tables about logins and grants: nobody but the admin reads them
ACCESS_SYSTEM_TABLES = frozenset({
    "users", "roles", "grants", "role_grants", "quotas", "quota_limits", "quota_usage", "quotas_usage",
    "row_policies", "settings_profiles", "settings_profile_elements", "user_directories", "enabled_roles",
    "current_roles", "user_processes", "privileges",
})  # fmt: skip
# table functions that read nothing but their arguments
GENERATOR_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "one", "values", "generaterandom", "generate_series",
    "generateseries", "null", "view", "format",
})  # fmt: skip
# and those the pipeline reads through (dbt's event models, the marts, the loaders)
WRITER_TABLE_FUNCTIONS = GENERATOR_TABLE_FUNCTIONS | {"file", "s3", "url", "postgresql", "input"}
# functions that read files or other tables by name, whatever the FROM clause says
READER_REFUSED_FUNCTIONS = re.compile(r"^(file|dict\w*|joinget\w*|getmacro|input|filesystem\w*)$")
IN_FUNCTIONS = frozenset({"in", "notin", "globalin", "globalnotin", "nullin", "notnullin"})

READER_STATEMENTS = re.compile(
    r"^(SelectWithUnionQuery|SelectIntersectExceptQuery|SelectQuery|Explain\w*|DescribeQuery|Exists\w*"
    r"|ShowTables|ShowCreate\w*|Set|UseQuery)$"
)
WRITER_REFUSED_STATEMENTS = re.compile(
    r"(User|Role|Quota|RowPolicy|SettingsProfile|Grant|AccessEntity|Privileges|Access\b|KillQuery|SYSTEM"
    r"|Backup|Dictionary)"
)
# statements whose direct Identifier children name their target: (database, table) or one of them
TARGET_STATEMENTS = re.compile(
    r"^(Create|Attach|Drop|Detach|Undrop|Alter|Optimize|Truncate|Delete|Insert|Rename|Exchange|Exists"
    r"|ShowCreate|UseQuery|ShowTables|Describe)"
)
# a first word the reader's statements never start with: refused without being parsed
READER_FIRST_WORDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "SET", "USE", "("}
)


@dataclass(frozen=True)
class Login:
    name: str
    password: str
    role: str  # admin | writer | reader
    # the database a query of this login runs in when the request names none (None: the engine's default)
    default_database: str | None = None
    # settings the endpoint puts on every connection of the login after the request's own: its profile
    profile: dict[str, str] = field(default_factory=dict)


def logins(admin: tuple[str, str], writer: tuple[str, str], reader: tuple[str, str]) -> dict[str, Login]:
    """{name: Login} of the endpoint's three logins."""
    found = [
        Login(admin[0], admin[1], "admin"),
        # no default database: dbt creates `cdm` itself, and its temporary tables live outside databases
        Login(writer[0], writer[1], "writer"),
        Login(reader[0], reader[1], "reader", default_database="cdm", profile={"readonly": "2"}),
    ]
    names = [login.name for login in found]
    if len(set(names)) != len(names):
        raise ValueError(f"the ClickHouse logins must have different names, got {names}")
    return {login.name: login for login in found}


class AccessError(Exception):
    """A refusal in ClickHouse's form (its code and exception name); http.py turns it into a QueryError."""

    def __init__(self, code: int, name: str, message: str):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message


def authenticate(known: dict[str, Login], user: str, password: str) -> Login:
    """The login of this user name and password, or AUTHENTICATION_FAILED (the same answer for an unknown
    user and a wrong password, compared in constant time)."""
    login = known.get(user)
    expected = login.password if login else "\0no such login"
    matches = hmac.compare_digest(password.encode(errors="replace"), expected.encode())
    if login is None or not matches:
        raise AccessError(
            AUTHENTICATION_FAILED,
            "AUTHENTICATION_FAILED",
            f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
        )
    return login


def check_settings(login: Login, settings: dict[str, str]) -> dict[str, str]:
    """The request's settings as the login may have them: a profile's setting cannot be loosened (ClickHouse:
    `readonly` cannot be changed in readonly mode); asking for the profile's own value is fine."""
    kept = dict(settings)
    for name, value in login.profile.items():
        if name in kept:
            asked = kept.pop(name)
            if name == "readonly" and asked not in ("1", "2", value):
                raise AccessError(READONLY, "READONLY", "Cannot modify 'readonly' setting in readonly mode")
    return kept


def check_database(login: Login, database: str) -> None:
    if login.role != "admin" and database not in DATA_DATABASES:
        raise _denied(login, f"SHOW TABLES ON {database}.*")


def check_first_word(login: Login, statement: str) -> None:
    """A reader's statement that is not a read is refused before it is parsed."""
    if login.role == "reader" and statement not in READER_FIRST_WORDS:
        raise AccessError(READONLY, "READONLY", f"{login.name}: Cannot execute query in readonly mode")


# -- the parsed statement ------------------------------------------------------------------------
@dataclass
class Node:
    kind: str
    args: str
    line: str
    children: list[Node] = field(default_factory=list)


_LINE = re.compile(r"^( *)(\S+)(.*?)(?: \(children \d+\))?$")


def parse_ast(text: str) -> Node:
    """The tree `EXPLAIN AST` prints: one node a line, one space of indent per level."""
    root = Node("", "", "")
    stack: list[tuple[int, Node]] = [(-1, root)]
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _LINE.match(line)
        depth = len(match.group(1))
        node = Node(match.group(2), match.group(3).strip(), line)
        while stack[-1][0] >= depth:
            stack.pop()
        stack[-1][1].children.append(node)
        stack.append((depth, node))
    if len(root.children) != 1:
        raise AccessError(ACCESS_DENIED, "ACCESS_DENIED", "the statement could not be checked")
    return root.children[0]


def _walk(node: Node, parent: Node | None = None) -> Iterator[tuple[Node, Node | None]]:
    yield node, parent
    for child in node.children:
        yield from _walk(child, node)


def _name(text: str) -> str:
    """An AST identifier's name (the `(alias x)` part dropped)."""
    return re.sub(r" \(alias .*\)$", "", text).strip()


def _split_table(login: Login, name: str) -> tuple[str | None, str]:
    """(database or None for the current one, table) of a `TableIdentifier` name."""
    if "`" in name or '"' in name or name.count(".") > 1:
        # a quoted name holding dots cannot be told apart from database.table in the printed tree
        raise _denied(login, f"SELECT ON {name}")
    database, dot, table = name.partition(".")
    return (database, table) if dot else (None, name)


def check_statement(login: Login, ast_text: str, current_database: str | None) -> None:
    """Refuse (AccessError) what the login's grants do not cover in one parsed statement."""
    if login.role == "admin":
        return
    root = parse_ast(ast_text)
    if login.role == "reader" and not READER_STATEMENTS.match(root.kind):
        raise AccessError(READONLY, "READONLY", f"{login.name}: Cannot execute query in readonly mode")
    if login.role == "writer" and WRITER_REFUSED_STATEMENTS.search(root.kind):
        raise _denied(login, f"{root.kind} (access management, KILL, SYSTEM, BACKUP, dictionaries)")
    tables: list[tuple[str | None, str]] = []
    table_functions = GENERATOR_TABLE_FUNCTIONS if login.role == "reader" else WRITER_TABLE_FUNCTIONS
    for node, parent in _walk(root):
        if node.kind == "TableIdentifier":
            tables.append(_split_table(login, _name(node.args)))
        elif node.kind == "Function":
            function = _name(node.args).split(" ")[0].lower()
            if parent is not None and parent.kind in ("TableExpression", "InsertQuery", "DescribeQuery"):
                if function not in table_functions:
                    raise _denied(login, f"CREATE TEMPORARY TABLE, {function.upper()} ON *.*")
            elif login.role == "reader" and READER_REFUSED_FUNCTIONS.match(function):
                raise _denied(login, f"{function} (reads files or dictionaries)")
            elif function in IN_FUNCTIONS and node.children and len(node.children[0].children) == 2:
                right = node.children[0].children[1]
                if right.kind == "Identifier" and "." in right.args:
                    tables.append(_split_table(login, _name(right.args)))
        elif node.kind == "Dictionary" and login.role != "admin":
            raise _denied(login, "CREATE DICTIONARY")
    if TARGET_STATEMENTS.match(root.kind):
        names = [_name(child.args) for child in root.children if child.kind == "Identifier"]
        database_level = (
            "Database" in root.kind
            or root.kind in ("UseQuery", "ShowTables")
            or (
                # `CREATE DATABASE x` / `DROP DATABASE x` print the database, then an empty table name
                root.kind in ("CreateQuery", "DropQuery", "AttachQuery", "DetachQuery", "UndropQuery")
                and len(names) == 1
                and re.search(r"  \(children|\s$", root.line) is not None
            )
        )
        if root.kind == "Rename":
            tables += [(names[i], names[i + 1]) for i in range(0, len(names) - 1, 2)]
        elif len(names) == 2:
            tables.append((names[0], names[1]))
        elif len(names) == 1:
            tables.append((names[0], "") if database_level else (None, names[0]))
    for database, table in tables:
        if database is None and current_database is None:
            # the writer's statement names no database and the request none either: a temporary table (or
            # one in chDB's own `default` database, which holds nothing of T-Shop's)
            continue
        _check_table(login, database or current_database, table)


def _check_table(login: Login, database: str, table: str) -> None:
    if database in DATA_DATABASES:
        return
    if database == "system":
        if login.role == "reader" and table in READER_SYSTEM_TABLES:
            return
        if login.role == "writer" and table not in ACCESS_SYSTEM_TABLES and table:
            return
    grant = f"SELECT ON {database}.{table or '*'}"
    raise _denied(login, grant)


def _denied(login: Login, grant: str) -> AccessError:
    return AccessError(
        ACCESS_DENIED,
        "ACCESS_DENIED",
        f"{login.name}: Not enough privileges. To execute this query, it's necessary to have the grant "
        f"{grant} (T-Shop's {login.role} login)",
    )


# -- a real ClickHouse server --------------------------------------------------------------------
def clickhouse_users_sql(writer: tuple[str, str], reader: tuple[str, str]) -> list[str]:
    """The writer and the reader as ClickHouse's own access SQL (users, roles, a settings profile, grants),
    for a real server (the admin is the server's own). Idempotent: run it again to reset the passwords."""

    def text(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def name(value: str) -> str:
        return "`" + value.replace("`", "\\`") + "`"

    statements = [
        "CREATE SETTINGS PROFILE IF NOT EXISTS tshop_read_only SETTINGS readonly = 2",
        "CREATE ROLE IF NOT EXISTS tshop_reading",
        "CREATE ROLE IF NOT EXISTS tshop_writing",
    ]
    for database in sorted(DATA_DATABASES):
        statements += [
            f"GRANT SELECT, SHOW ON {database}.* TO tshop_reading",
            f"GRANT SELECT, INSERT, ALTER, CREATE TABLE, CREATE VIEW, CREATE DATABASE, DROP TABLE, DROP VIEW, "
            f"DROP DATABASE, TRUNCATE, OPTIMIZE, SHOW ON {database}.* TO tshop_writing",
        ]
    statements += [
        f"GRANT SELECT ON system.{table} TO tshop_reading" for table in sorted(READER_SYSTEM_TABLES)
    ]
    statements += [
        "GRANT CREATE TEMPORARY TABLE, FILE, URL, S3, POSTGRES ON *.* TO tshop_writing",
        "GRANT SELECT ON system.* TO tshop_writing",
    ]
    statements += [
        f"REVOKE SELECT ON system.{table} FROM tshop_writing" for table in sorted(ACCESS_SYSTEM_TABLES)
    ]
    for (user, password), role, extra in (
        (writer, "tshop_writing", ""),
        (reader, "tshop_reading", " SETTINGS PROFILE tshop_read_only"),
    ):
        identified = f"IDENTIFIED WITH sha256_password BY {text(password)}"
        statements += [
            f"CREATE USER IF NOT EXISTS {name(user)} {identified} DEFAULT DATABASE cdm{extra}",
            f"ALTER USER {name(user)} {identified} DEFAULT DATABASE cdm{extra}",
            f"GRANT {role} TO {name(user)}",
            f"ALTER USER {name(user)} DEFAULT ROLE {role}",
        ]
    return statements


def ensure_clickhouse_users(config) -> str:
    """Create (or reset) the writer and the reader on an external ClickHouse server (TSHOP_CLICKHOUSE_URL) as the
    URL's admin, when their users and passwords are set (TSHOP_CLICKHOUSE_WRITER_USER/_PASSWORD and the
    reader's); the local endpoint has them built in. Says what it did."""
    if not config.external_clickhouse_url:
        return "the local ClickHouse endpoint has its logins built in"
    wanted = {}
    for role in ("writer", "reader"):
        prefix = f"TSHOP_CLICKHOUSE_{role.upper()}"
        user, password = config.env.get(f"{prefix}_USER"), config.env.get(f"{prefix}_PASSWORD")
        if not (user and password):
            return f"{prefix}_USER/_PASSWORD are not set: the external ClickHouse's own logins are used"
        wanted[role] = (user, password)
    from clickhouse_connect.driver.exceptions import DatabaseError

    from tshop import clients

    client = clients.clickhouse(config)
    try:
        for statement in clickhouse_users_sql(wanted["writer"], wanted["reader"]):
            client.command(statement)
    except DatabaseError as error:
        # the URL is this install's local endpoint (`eval "$(tshop env)"` exports it): chDB keeps no users
        if "ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND" in str(error):
            return "the ClickHouse endpoint keeps no users of its own: its logins are built in"
        raise
    finally:
        client.close()
    return f"ClickHouse users {wanted['writer'][0]} and {wanted['reader'][0]} are set up"
