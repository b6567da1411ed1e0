"""What T-Shop does inside Superset's own Python: set up the admin, import `superset_assets/`, export it back.

`python -m tshop.superset_cli admin|import|export <bundle dir>` inside Superset's environment (with
SUPERSET_CONFIG_PATH pointing at tshop/superset_config.py). It imports nothing else from T-Shop: the Superset
environment has Superset's packages, not ours. `tshop.dashboard` runs it with everything it needs in the
environment:

- TSHOP_SUPERSET_USER, TSHOP_SUPERSET_PASSWORD: the admin (created, or its password set, by `admin`), whom
  the import runs as (it owns what it creates);
- TSHOP_SUPERSET_CLICKHOUSE_URI: the `clickhousedb://user@host:port/cdm` this install reaches ClickHouse at;
- TSHOP_SUPERSET_CLICKHOUSE_PASSWORD: its password.
- TSHOP_SUPERSET_VIEWER_USER, TSHOP_SUPERSET_VIEWER_PASSWORD: the viewer, made (or its password set) by the
  import with the `T-Shop viewer` role (VIEWER_ROLE): the dashboards and nothing else.

The files never hold either: the database file keeps the compose address with Superset's password mask,
and the import swaps in the real ones. The import tries them on ClickHouse first, so a wrong password stops
it before anything changes and the dashboard already imported keeps working.

The bundle holds three dashboards, `T-Shop sales`, `T-Shop customers` and `T-Shop funnel` (DASHBOARD_UUIDS),
sharing the database; an import and an export always take all of them.

The import makes each dashboard exactly the bundle's: charts that were on it and that its file's position no
longer names are unlinked, and deleted when no other dashboard shows them (Superset up to 6.0 merges an
overwriting import's charts with the ones already there, apache/superset#22127; 6.1 replaces the links but
keeps the dropped charts). Re-importing the same bundle changes nothing.

The export writes the files in a form that diffs well: one file per object named after the object (not
after database ids), keys in Superset's own order, no timestamp, the masked compose address in the database
file, and the same ids on every install: the database ids the files mention (a chart's dataset, the
dashboard's charts) are replaced by those a fresh install gives, charts, datasets and dashboards numbered
from 1 in the order of their files, the order the import creates them in. The import maps them back to this
install's ids. Export, import, export gives the same files.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import yaml

# the bundle's dashboards: T-Shop sales, T-Shop customers, T-Shop funnel (uuid5 of the URL namespace and
# `tshop/superset_assets/<kind>/<name>` for the customers and funnel dashboards' objects)
DASHBOARD_UUIDS = (
    "1b05681b-a290-5f9b-a7b8-b48d2e8f1fa5",
    "cad985b7-c748-5487-9117-286710967004",
    "9d7275cc-5f9b-5cb8-89f4-4a4dbe5a2b58",
)
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


VIEWER_ROLE = "T-Shop viewer"
# what a dashboard page itself calls besides reading dashboards and charts: its filters' state and permalinks,
# the time-range and form-data helpers, the favourite star, the page and the activity log
VIEWER_EXTRA_PERMISSIONS = {
    ("can_write", "DashboardFilterStateRestApi"),
    ("can_write", "DashboardPermalinkRestApi"),
    ("can_time_range", "Api"),
    ("can_query_form_data", "Api"),
    ("can_query", "Api"),
    ("can_dashboard", "Superset"),
    ("can_dashboard_permalink", "Superset"),
    ("can_explore_json", "Superset"),
    ("can_log", "Superset"),
    ("can_fave_dashboards", "Superset"),
    ("can_favstar", "Superset"),
    ("menu_access", "Dashboards"),
}
# what Gamma reads that a viewer does not: databases, datasets, saved and past queries, SQL Lab, Explore, reports
VIEWER_HIDDEN_VIEWS = re.compile(
    r"^(Database|Dataset|Datasource|SavedQuery|Query|SQLLab|SqlLab\w*|Explore\w*|ReportSchedule|Annotation\w*"
    r"|CssTemplate|Tag|Log|AdvancedDataType|AvailableDomains|DynamicPlugin|Theme\w*)$"
)


def viewer_permissions(security_manager) -> list:
    """The `T-Shop viewer` role's permissions: Gamma's (Superset's least role) that only read, less what reads
    databases, datasets, queries or opens SQL Lab or Explore, plus the few a dashboard page calls; and access to
    the dashboards' ClickHouse database (its datasets' data). No SQL Lab, no edit of anything, no lists of
    databases or datasets."""
    from superset import db
    from superset.models.core import Database

    read = security_manager.READ_ONLY_PERMISSION | security_manager.ACCESSIBLE_PERMS
    kept = []
    for pvm in _all_pvms(security_manager):
        if not pvm.permission or not pvm.view_menu:
            continue
        pair = (pvm.permission.name, pvm.view_menu.name)
        if pair in VIEWER_EXTRA_PERMISSIONS or (
            security_manager._is_gamma_pvm(pvm)
            and pvm.permission.name in read
            and not VIEWER_HIDDEN_VIEWS.match(pvm.view_menu.name)
        ):
            kept.append(pvm)
    for database in db.session.query(Database):
        pvm = security_manager.find_permission_view_menu("database_access", database.perm)
        if pvm is not None:
            kept.append(pvm)
    return kept


def _all_pvms(security_manager) -> list:
    from superset import db

    return db.session.query(security_manager.permissionview_model).all()


def ensure_viewer() -> str:
    """The `T-Shop viewer` role (its permissions set anew), and the viewer login with it and this install's
    generated password. Runs in an app context."""
    from superset import db, security_manager

    role = security_manager.add_role(VIEWER_ROLE)
    role.permissions = viewer_permissions(security_manager)
    db.session.commit()
    username, password = (
        os.environ["TSHOP_SUPERSET_VIEWER_USER"],
        os.environ["TSHOP_SUPERSET_VIEWER_PASSWORD"],
    )
    if username == os.environ["TSHOP_SUPERSET_USER"]:
        raise BundleError(f"the viewer cannot be the admin {username!r}: set TSHOP_SUPERSET_VIEWER_USER")
    user = security_manager.find_user(username=username)
    if user is None:
        if not security_manager.add_user(
            username, "T-Shop", "Viewer", f"{username}@tshop.invalid", role, password
        ):
            raise BundleError(f"Superset could not create the viewer {username!r}")
        return f"created viewer {username} ({VIEWER_ROLE}: {len(role.permissions)} permissions)"
    user.roles = [role]
    security_manager.reset_password(user.id, password)
    db.session.commit()
    return f"viewer {username} has the role {VIEWER_ROLE} ({len(role.permissions)} permissions)"


def read_bundle(bundle: Path) -> dict[str, str]:
    """The bundle's files as Superset's importer takes them: {relative path: text}."""
    files = {"metadata.yaml": (bundle / "metadata.yaml").read_text()}
    for kind in KINDS:
        for path in sorted((bundle / kind).rglob("*.yaml")):
            files[path.relative_to(bundle).as_posix()] = path.read_text()
    return files


UNKNOWN_DATABASE = re.compile(r"\bcode: 81\b|UNKNOWN_DATABASE")


def check_clickhouse(uri: str, password: str) -> None:
    """Open the database the dashboard will read, with the password the import will store."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(uri).set(password=password)
    try:
        with create_engine(url).connect() as conn:
            conn.execute(text("select 1")).scalar()
    except Exception as error:  # noqa: BLE001 - any driver error means: do not import
        if UNKNOWN_DATABASE.search(str(error)):
            # ClickHouse authenticates before it opens the database: the login is right, and a fresh install's
            # database appears with the first pipeline run (the demo imports alongside that run)
            return
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
        dashboards = {
            name: yaml.safe_load(text) for name, text in contents.items() if name.startswith("dashboards/")
        }
        linked_before = {
            uuid: _linked_charts(uuid) for uuid in (config["uuid"] for config in dashboards.values())
        }
        for command, model_type, prefixes in steps:
            if model_type == "Dashboard":
                # the charts exist now: point the filters' chart lists at their ids on this install
                for name, config in dashboards.items():
                    contents[name] = yaml.safe_dump(_with_install_chart_ids(config), sort_keys=False)
            part = {name: text for name, text in contents.items() if name.startswith(prefixes)}
            part["metadata.yaml"] = yaml.safe_dump({"version": "1.0.0", "type": model_type})
            try:
                command(part, passwords=passwords, overwrite=True).run()
            except CommandInvalidError as error:
                raise BundleError(
                    f"Superset refused the bundle in {bundle}: {error.normalized_messages()}"
                ) from None
        for config in dashboards.values():
            _drop_charts_not_in_position(config, linked_before[config["uuid"]])
        print(ensure_viewer())


def _position_charts(config: dict) -> dict[int, str]:
    """{chart id as the file says: chart uuid} of the charts a dashboard file's position places."""
    return {
        item["meta"]["chartId"]: item["meta"]["uuid"]
        for item in config.get("position", {}).values()
        if isinstance(item, dict) and item.get("type") == "CHART" and "uuid" in item.get("meta", {})
    }


def _linked_charts(dashboard_uuid: str) -> dict[str, int]:
    """{chart uuid: id} of the charts Superset links to the dashboard now (none before its first import)."""
    from uuid import UUID

    from superset import db
    from superset.models.dashboard import Dashboard

    dashboard = db.session.query(Dashboard).filter_by(uuid=UUID(dashboard_uuid)).one_or_none()
    return {str(chart.uuid): chart.id for chart in dashboard.slices} if dashboard else {}


def _with_install_chart_ids(config: dict) -> dict:
    """The dashboard file with its native filters' `chartsInScope` in this install's chart ids.

    Superset's import maps the position's chart ids and the filters' excluded charts to the install's ids,
    but not `chartsInScope`, which the dashboard's filter bar trusts: a chart whose id differs from the
    file's (created later, or re-created) would otherwise not follow the filters.
    """
    from superset import db
    from superset.models.slice import Slice

    uuids = _position_charts(config)
    ids = {str(uuid): chart_id for uuid, chart_id in db.session.query(Slice.uuid, Slice.id)}
    to_install = {file_id: ids[uuid] for file_id, uuid in uuids.items() if uuid in ids}
    config = json.loads(json.dumps(config))
    for native_filter in config.get("metadata", {}).get("native_filter_configuration", []):
        if "chartsInScope" in native_filter:
            native_filter["chartsInScope"] = [
                to_install[chart] for chart in native_filter["chartsInScope"] if chart in to_install
            ]
    return config


def _drop_charts_not_in_position(config: dict, linked_before: dict[str, int]) -> None:
    """Leave the dashboard with exactly the charts its file's position places (apache/superset#22127).

    A chart that was on the dashboard and that the file no longer places is unlinked, and deleted with
    Superset's own command when no other dashboard shows it: the bundle is the dashboard's source.
    """
    from uuid import UUID

    from superset import db
    from superset.commands.chart.delete import DeleteChartCommand
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice

    wanted = set(_position_charts(config).values())
    dashboard = db.session.query(Dashboard).filter_by(uuid=UUID(config["uuid"])).one()
    stale = [chart for chart in dashboard.slices if str(chart.uuid) not in wanted]
    if stale:
        dashboard.slices = [chart for chart in dashboard.slices if str(chart.uuid) in wanted]
        db.session.commit()
    dropped = {chart_id for uuid, chart_id in linked_before.items() if uuid not in wanted}
    dropped |= {chart.id for chart in stale}
    orphans = [
        chart.id for chart in db.session.query(Slice).filter(Slice.id.in_(dropped)) if not chart.dashboards
    ]
    if orphans:
        DeleteChartCommand(orphans).run()


def _file_name(kind: str, config: dict) -> str:
    """A file name from the object's own name, the same on every install (Superset's has the row id)."""
    name = {
        "databases": lambda: config["database_name"],
        "datasets": lambda: config["table_name"],
        "charts": lambda: config["slice_name"],
        "dashboards": lambda: config["dashboard_title"],
    }[kind]()
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") + ".yaml"


def normalised(name: str, text: str, ids: BundleIds | None = None) -> tuple[str, str]:
    """One exported file in the bundle's form: (relative path, text)."""
    config = yaml.safe_load(text)
    if name == "metadata.yaml":
        config.pop("timestamp", None)
        return name, dump(config)
    kind = name.split("/", 1)[0]
    if kind == "databases":
        config["sqlalchemy_uri"] = BUNDLE_CLICKHOUSE_URI
    if kind == "datasets":
        # Superset lists them in the order its metadata database returns the rows, which an update changes
        config["metrics"] = sorted(config.get("metrics") or [], key=lambda metric: metric["metric_name"])
        config["columns"] = sorted(config.get("columns") or [], key=lambda column: column["column_name"])
    if ids is not None and kind in ("charts", "dashboards"):
        config = ids.canonical(kind, config)
    if kind == "charts" and config.get("query_context"):
        # Superset stores it as one line of JSON; indented with sorted keys it diffs line by line
        config["query_context"] = json.dumps(json.loads(config["query_context"]), indent=2, sort_keys=True)
    # datasets keep Superset's folder per database
    folder = name.rsplit("/", 1)[0] if kind == "datasets" else kind
    return f"{folder}/{_file_name(kind, config)}", dump(config)


class BundleIds:
    """The ids a fresh install gives the bundle's charts, datasets and dashboard (the import creates each kind
    in the order of its files: 1, 2, ...), and this install's ids of them. The files hold the former, so an
    export does not depend on what the install created or deleted before."""

    def __init__(self, exported: dict[str, str]):
        from superset import db
        from superset.connectors.sqla.models import SqlaTable
        from superset.models.dashboard import Dashboard
        from superset.models.slice import Slice

        def numbered(kind: str, model) -> tuple[dict[str, int], dict[int, int]]:
            """({uuid: fresh-install id}, {this install's id: fresh-install id}) of one kind."""
            files = {
                _file_name(kind, config): config["uuid"]
                for name, text in exported.items()
                if name.startswith(f"{kind}/") and (config := yaml.safe_load(text))
            }
            numbers = {files[file]: number for number, file in enumerate(sorted(files), start=1)}
            ids = {str(uuid): row_id for uuid, row_id in db.session.query(model.uuid, model.id)}
            return numbers, {ids[uuid]: number for uuid, number in numbers.items()}

        self.charts, self.install_charts = numbered("charts", Slice)
        self.datasets, _ = numbered("datasets", SqlaTable)
        self.dashboards, _ = numbered("dashboards", Dashboard)
        # {chart uuid: fresh-install id of the first dashboard (by file) whose position places it}
        self.chart_dashboards: dict[str, int] = {}
        for name, text in exported.items():
            if name.startswith("dashboards/"):
                config = yaml.safe_load(text)
                for chart_uuid in _position_charts(config).values():
                    number = self.dashboards[config["uuid"]]
                    self.chart_dashboards[chart_uuid] = min(
                        number, self.chart_dashboards.get(chart_uuid, number)
                    )

    def canonical(self, kind: str, config: dict) -> dict:
        """The chart or dashboard file with fresh-install ids instead of this install's."""
        config = json.loads(json.dumps(config))
        if kind == "charts":
            # the chart's own ids, from its uuid: the import keeps the query context's as the file said
            chart = self.charts[config["uuid"]]
            dataset_id = self.datasets[config["dataset_uuid"]]
            dataset_type = config["params"]["datasource"].split("__", 1)[1]
            dataset = f"{dataset_id}__{dataset_type}"
            config["params"]["datasource"] = dataset
            if config.get("query_context"):
                context = json.loads(config["query_context"])
                context["datasource"]["id"] = dataset_id
                form_data = context.get("form_data", {})
                for key, value in (("slice_id", chart), ("chart_id", chart), ("datasource", dataset)):
                    if key in form_data:
                        form_data[key] = value
                # the dashboard the chart was last saved from: the one the bundle places it on
                if "dashboardId" in form_data and config["uuid"] in self.chart_dashboards:
                    form_data["dashboardId"] = self.chart_dashboards[config["uuid"]]
                config["query_context"] = json.dumps(context)
            return config
        for item in config.get("position", {}).values():
            if (
                isinstance(item, dict)
                and item.get("type") == "CHART"
                and item["meta"].get("uuid") in self.charts
            ):
                item["meta"]["chartId"] = self.charts[item["meta"]["uuid"]]
        # the filters' chart lists hold this install's ids (the import maps them, see _with_install_chart_ids)
        charts = self.install_charts
        metadata = config.get("metadata", {})
        scoped = [
            *metadata.get("native_filter_configuration", []),
            metadata.get("global_chart_configuration", {}),
        ]
        for scope in scoped:
            if "chartsInScope" in scope:
                scope["chartsInScope"] = sorted(charts.get(chart, chart) for chart in scope["chartsInScope"])
            if scope.get("scope", {}).get("excluded"):
                scope["scope"]["excluded"] = sorted(
                    charts.get(chart, chart) for chart in scope["scope"]["excluded"]
                )
        if "timed_refresh_immune_slices" in metadata:
            metadata["timed_refresh_immune_slices"] = [
                charts.get(chart, chart) for chart in metadata["timed_refresh_immune_slices"]
            ]
        return config


def export_bundle(bundle: Path) -> list[str]:
    from uuid import UUID

    with _app_context():
        from superset import db
        from superset.commands.dashboard.export import ExportDashboardsCommand
        from superset.models.dashboard import Dashboard

        _as_admin()
        found = {
            str(dashboard.uuid): dashboard.id
            for dashboard in db.session.query(Dashboard).filter(
                Dashboard.uuid.in_([UUID(uuid) for uuid in DASHBOARD_UUIDS])
            )
        }
        missing = [uuid for uuid in DASHBOARD_UUIDS if uuid not in found]
        if missing:
            raise BundleError(f"Superset has no dashboard {', '.join(missing)}; import the bundle first")
        exported = {
            name: content()
            for name, content in ExportDashboardsCommand([found[uuid] for uuid in DASHBOARD_UUIDS]).run()
            if name == "metadata.yaml" or name.split("/", 1)[0] in KINDS
        }
        ids = BundleIds(exported)
        files = dict(normalised(name, text, ids) for name, text in exported.items())
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
