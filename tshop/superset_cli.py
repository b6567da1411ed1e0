"""What T-Shop does inside Superset's own Python: set up the admin, import `superset_assets/`, export it back.

`python -m tshop.superset_cli admin|import|export <bundle dir>` inside Superset's environment (with
SUPERSET_CONFIG_PATH pointing at tshop/superset_config.py). It imports nothing else from T-Shop: the Superset
environment has Superset's packages, not ours. `tshop.dashboard` runs it with everything it needs in the
environment:

- TSHOP_SUPERSET_USER, TSHOP_SUPERSET_PASSWORD: the admin (created, or its password set, by `admin`), whom
  the import runs as (it owns what it creates);
- TSHOP_SUPERSET_CLICKHOUSE_URI: the `clickhousedb://user@host:port/cdm` this install reaches ClickHouse at;
- TSHOP_SUPERSET_CLICKHOUSE_PASSWORD: its password.

The files never hold either: the database file keeps the compose address with Superset's password mask,
and the import swaps in the real ones. The import tries them on ClickHouse first, so a wrong password stops
it before anything changes and the dashboard already imported keeps working.

The export writes the files in a form that diffs well: one file per object named after the object (not
after database ids), keys in Superset's own order, no timestamp, the masked compose address in the database
file. Export, import, export gives the same files.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import yaml

DASHBOARD_UUID = "1b05681b-a290-5f9b-a7b8-b48d2e8f1fa5"
# what the database file says: the compose service, the password masked as Superset masks it
PASSWORD_MASK = "XXXXXXXXXX"
BUNDLE_CLICKHOUSE_URI = f"clickhousedb://default:{PASSWORD_MASK}@clickhouse:8123/cdm"
KINDS = ("databases", "datasets", "charts", "dashboards")


class _BundleDumper(yaml.SafeDumper):
    """YAML with multi-line text (SQL, query contexts) as literal blocks, so a change is a change of lines."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_BundleDumper.add_representer(str, _represent_text)


def dump(config: dict) -> str:
    return yaml.dump(config, Dumper=_BundleDumper, sort_keys=False, allow_unicode=True, width=120)


class BundleError(RuntimeError):
    """The bundle cannot be imported or exported; the message says why."""


def _app_context():
    from superset.app import create_app

    app = create_app()
    return app.app_context()


def _as_admin() -> None:
    from flask import g
    from superset import security_manager

    username = os.environ["TSHOP_SUPERSET_USER"]
    user = security_manager.find_user(username=username)
    if user is None:
        raise BundleError(f"Superset has no user {username!r}; create it first (make dashboard)")
    g.user = user


def ensure_admin() -> str:
    """Create the admin, or set its password to this install's generated one (the one `make demo` prints)."""
    with _app_context():
        from superset import db, security_manager

        username, password = os.environ["TSHOP_SUPERSET_USER"], os.environ["TSHOP_SUPERSET_PASSWORD"]
        user = security_manager.find_user(username=username)
        if user is None:
            admin = security_manager.find_role("Admin")
            if security_manager.add_user(
                username, "T-Shop", "Admin", f"{username}@tshop.invalid", admin, password
            ):
                return f"created admin {username}"
            raise BundleError(f"Superset could not create the admin {username!r}")
        security_manager.reset_password(user.id, password)
        db.session.commit()
        return f"admin {username} has this install's password"


def read_bundle(bundle: Path) -> dict[str, str]:
    """The bundle's files as Superset's importer takes them: {relative path: text}."""
    files = {"metadata.yaml": (bundle / "metadata.yaml").read_text()}
    for kind in KINDS:
        for path in sorted((bundle / kind).rglob("*.yaml")):
            files[path.relative_to(bundle).as_posix()] = path.read_text()
    return files


def check_clickhouse(uri: str, password: str) -> None:
    """Open the database the dashboard will read, with the password the import will store."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(uri).set(password=password)
    try:
        with create_engine(url).connect() as conn:
            conn.execute(text("select 1")).scalar()
    except Exception as error:  # noqa: BLE001 - any driver error means: do not import
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BundleError(
            f"ClickHouse at {url.host}:{url.port} refused the dashboard's database login "
            f"({url.username}): {first[:300]}. Nothing was imported; the dashboard keeps its current login."
        ) from None


def import_bundle(bundle: Path) -> None:
    from sqlalchemy.engine import make_url

    uri = os.environ["TSHOP_SUPERSET_CLICKHOUSE_URI"]
    password = os.environ["TSHOP_SUPERSET_CLICKHOUSE_PASSWORD"]
    check_clickhouse(uri, password)
    contents = read_bundle(bundle)
    passwords = {}
    for name in contents:
        if name.startswith("databases/"):
            config = yaml.safe_load(contents[name])
            # Superset keeps the stored password only behind its mask; a URI without one clears it
            config["sqlalchemy_uri"] = (
                make_url(uri).set(password=PASSWORD_MASK).render_as_string(hide_password=False)
            )
            contents[name] = yaml.safe_dump(config, sort_keys=False)
            passwords[name] = password
    with _app_context():
        # Superset's models can be imported only once its app exists
        from superset.commands.chart.importers.v1 import ImportChartsCommand
        from superset.commands.dashboard.importers.v1 import ImportDashboardsCommand
        from superset.commands.database.importers.v1 import ImportDatabasesCommand
        from superset.commands.dataset.importers.v1 import ImportDatasetsCommand
        from superset.commands.exceptions import CommandInvalidError

        _as_admin()
        # A dashboard import overwrites the dashboard but keeps the database, datasets and charts that exist;
        # importing each kind first as a bundle of its own overwrites them too (login, metrics, charts).
        steps = [
            (ImportDatabasesCommand, "Database", ("databases/",)),
            (ImportDatasetsCommand, "SqlaTable", ("databases/", "datasets/")),
            (ImportChartsCommand, "Slice", ("databases/", "datasets/", "charts/")),
            (ImportDashboardsCommand, "Dashboard", ("databases/", "datasets/", "charts/", "dashboards/")),
        ]
        for command, model_type, prefixes in steps:
            part = {name: text for name, text in contents.items() if name.startswith(prefixes)}
            part["metadata.yaml"] = yaml.safe_dump({"version": "1.0.0", "type": model_type})
            try:
                command(part, passwords=passwords, overwrite=True).run()
            except CommandInvalidError as error:
                raise BundleError(
                    f"Superset refused the bundle in {bundle}: {error.normalized_messages()}"
                ) from None


def _file_name(kind: str, config: dict) -> str:
    """A file name from the object's own name, the same on every install (Superset's has the row id)."""
    name = {
        "databases": lambda: config["database_name"],
        "datasets": lambda: config["table_name"],
        "charts": lambda: config["slice_name"],
        "dashboards": lambda: config["dashboard_title"],
    }[kind]()
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") + ".yaml"


def normalised(name: str, text: str) -> tuple[str, str]:
    """One exported file in the bundle's form: (relative path, text)."""
    config = yaml.safe_load(text)
    if name == "metadata.yaml":
        config.pop("timestamp", None)
        return name, dump(config)
    kind = name.split("/", 1)[0]
    if kind == "databases":
        config["sqlalchemy_uri"] = BUNDLE_CLICKHOUSE_URI
    if kind == "charts" and config.get("query_context"):
        # Superset stores it as one line of JSON; indented with sorted keys it diffs line by line
        config["query_context"] = json.dumps(json.loads(config["query_context"]), indent=2, sort_keys=True)
    # datasets keep Superset's folder per database
    folder = name.rsplit("/", 1)[0] if kind == "datasets" else kind
    return f"{folder}/{_file_name(kind, config)}", dump(config)


def export_bundle(bundle: Path) -> list[str]:
    from uuid import UUID

    with _app_context():
        from superset import db
        from superset.commands.dashboard.export import ExportDashboardsCommand
        from superset.models.dashboard import Dashboard

        _as_admin()
        dashboard = db.session.query(Dashboard).filter_by(uuid=UUID(DASHBOARD_UUID)).one_or_none()
        if dashboard is None:
            raise BundleError(f"Superset has no dashboard {DASHBOARD_UUID}; import the bundle first")
        files = dict(
            normalised(name, content())
            for name, content in ExportDashboardsCommand([dashboard.id]).run()
            if name == "metadata.yaml" or name.split("/", 1)[0] in KINDS
        )
    # the export is the whole bundle: files of objects that are gone go too
    for kind in KINDS:
        for path in (bundle / kind).rglob("*.yaml"):
            if path.relative_to(bundle).as_posix() not in files:
                path.unlink()
    for name, text in files.items():
        path = bundle / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(files)


def main(argv: list[str]) -> int:
    if not (argv == ["admin"] or (len(argv) == 2 and argv[0] in ("import", "export"))):
        print(
            "usage: python -m tshop.superset_cli admin | import <bundle dir> | export <bundle dir>",
            file=sys.stderr,
        )
        return 2
    command, bundle = argv[0], Path(argv[-1])
    try:
        if command == "admin":
            print(ensure_admin())
        elif command == "import":
            import_bundle(bundle)
            print(f"imported {bundle}")
        else:
            for name in export_bundle(bundle):
                print(f"exported {bundle / name}")
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
