"""Superset on the local machine: its metadata database, its admin, the dashboard bundle, the web app.

Superset runs from its own environment (`.venvs/superset`) and is configured only by the environment that
`superset_env()` builds (tshop/superset_config.py reads it). Its metadata lives in its own database on the
warehouse's PostgreSQL server. The dashboards (T-Shop sales, T-Shop customers, T-Shop funnel) are
`superset_assets/`, imported and exported together by `tshop.superset_cli` inside Superset's Python.
"""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from tshop.config import REPO_ROOT, Settings
from tshop.errors import TShopError
from tshop.services._process import ServiceError, wait_until
from tshop.services.background import BackgroundProcess
from tshop.services.postgres import create_database_if_missing

SUPERSET_BIN = REPO_ROOT / ".venvs" / "superset" / "bin"
BUNDLE = REPO_ROOT / "superset_assets"
SUPERSET_CONFIG = REPO_ROOT / "tshop" / "superset_config.py"
# the bundle's dashboards (T-Shop sales, T-Shop customers, T-Shop funnel), and the ClickHouse database their
# datasets read
DASHBOARD_SLUG = "tshop"
CUSTOMERS_DASHBOARD_SLUG = "tshop-customers"
FUNNEL_DASHBOARD_SLUG = "tshop-funnel"
CLICKHOUSE_DATABASE = "cdm"


# the chart that shows each tile of CONTRACT section 3 (the keys of tshop.metrics)
CHART_METRICS = {
    "Revenue per day": "revenue per day",
    "Revenue per day by category": "revenue per day and category",
    "Revenue by age band": "revenue by age band",
    "Revenue": "revenue",
    "Customers": "customers",
    "Items per cheque": "items per cheque",
    "Average cheque": "average cheque",
    "Average age": "average age",
    "Most popular size": "most popular size",
}
# the dashboard's other tiles: when the data it shows was loaded (cdm.sales_datamart_freshness)
STATUS_CHARTS = ("Data as of",)
DASHBOARD_CHARTS = (*CHART_METRICS, *STATUS_CHARTS)
# the customers dashboard's charts, over cdm.customer_monthly (CONTRACT section 9)
CUSTOMERS_DASHBOARD_CHARTS = (
    "Customers per segment by month",
    "New and returning customers per month",
    "Revenue by segment",
    "Coupons issued by segment and discount",
)
# the funnel dashboard's charts, over cdm.conversion_funnel_daily and cdm.product_rating (CONTRACT section 8)
FUNNEL_DASHBOARD_CHARTS = (
    "Conversion",
    "Reviews",
    "Sessions to buyers",
    "Conversion per day",
    "Average rating by category",
)
# {slug: the charts on it} of every dashboard the bundle holds
DASHBOARDS = {
    DASHBOARD_SLUG: DASHBOARD_CHARTS,
    CUSTOMERS_DASHBOARD_SLUG: CUSTOMERS_DASHBOARD_CHARTS,
    FUNNEL_DASHBOARD_SLUG: FUNNEL_DASHBOARD_CHARTS,
}


class DashboardError(TShopError):
    """Superset could not be set up, or the bundle could not be imported or exported."""


def clickhouse_uri(config: Settings) -> tuple[str, str]:
    """(`clickhousedb://user@host:port/cdm`, password) of the ClickHouse this install's dashboard reads: the
    read-only login (tshop/services/clickhouse/access.py)."""
    parts = urlsplit(config.clickhouse_url_as("reader"))
    user = unquote(parts.username or "default")
    port = parts.port or (8443 if parts.scheme == "https" else 8123)
    query = "?secure=true" if parts.scheme == "https" else ""
    uri = f"clickhousedb://{quote(user, safe='')}@{parts.hostname}:{port}/{CLICKHOUSE_DATABASE}{query}"
    return uri, unquote(parts.password or "")


def superset_env(config: Settings) -> dict[str, str]:
    metadata = urlsplit(config.pg_dsn_as("superset", database=config.superset_database))
    uri, password = clickhouse_uri(config)
    return {
        **config.client_env(),
        "SUPERSET_CONFIG_PATH": str(SUPERSET_CONFIG),
        "SUPERSET_HOME": str(config.superset_home),
        "FLASK_APP": "superset",
        # tshop.superset_cli runs in Superset's Python and imports nothing else from T-Shop
        "PYTHONPATH": str(REPO_ROOT),
        "TSHOP_SUPERSET_SECRET_KEY": config.secret("TSHOP_SUPERSET_SECRET_KEY"),
        "TSHOP_SUPERSET_DATABASE_URI": metadata._replace(scheme="postgresql+psycopg2").geturl(),
        "TSHOP_SUPERSET_USER": config.superset_user,
        "TSHOP_SUPERSET_PASSWORD": config.superset_password,
        "TSHOP_SUPERSET_VIEWER_USER": config.superset_viewer_user,
        "TSHOP_SUPERSET_VIEWER_PASSWORD": config.superset_viewer_password,
        "TSHOP_SUPERSET_CLICKHOUSE_URI": uri,
        "TSHOP_SUPERSET_CLICKHOUSE_PASSWORD": password,
        "SCARF_ANALYTICS": "false",
    }


def superset(config: Settings, *args: str) -> str:
    """Run Superset's CLI (or, with `-m`, a module in Superset's Python); raise DashboardError on failure."""
    command = (
        [str(SUPERSET_BIN / "python"), *args] if args[0] == "-m" else [str(SUPERSET_BIN / "superset"), *args]
    )
    result = subprocess.run(
        command, env=superset_env(config), capture_output=True, text=True, timeout=900, cwd=REPO_ROOT
    )
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        detail = "\n".join(errors) or (result.stdout[-2000:] + result.stderr[-3000:])
        raise DashboardError(f"`superset {' '.join(args[:3])}` failed (exit {result.returncode}): {detail}")
    return result.stdout


def _superset_version() -> str:
    result = subprocess.run(
        [str(SUPERSET_BIN / "python"), "-c", "from importlib.metadata import version; print(version('apache-superset'))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise PackageNotFoundError("apache-superset is not installed in .venvs/superset (make envs)")
    return result.stdout.strip()


# the setups ensure_superset has done in this process: `make demo` imports the dashboard and then starts
# the web app, and each would otherwise start Superset once more (about 11 s here) to set the same admin
_ENSURED: set[tuple[str, ...]] = set()


def ensure_superset(config: Settings) -> None:
    """Create Superset's database, migrate it and set up its roles (once), and create the admin or set its
    password to this install's generated one."""
    done = (
        str(config.superset_home),
        config.pg_dsn_as("superset", database=config.superset_database),
        config.superset_user,
        config.superset_password,
    )
    if done in _ENSURED:
        return
    home = config.superset_home
    home.mkdir(parents=True, exist_ok=True)
    create_database_if_missing(config, config.superset_database, "superset")

    # once per Superset version and metadata database
    metadata = quote(config.pg_dsn_as("superset", database=config.superset_database), safe="")[-24:]
    stamp = home / f".initialised-{_superset_version()}-{metadata}"
    if not stamp.exists():
        superset(config, "db", "upgrade")
        superset(config, "init")
        stamp.touch()
    superset(config, "-m", "tshop.superset_cli", "admin")
    _ENSURED.add(done)


def import_dashboard(config: Settings, bundle: Path = BUNDLE) -> None:
    """Import (overwrite) the bundle, every dashboard. The ClickHouse login is tried first: a wrong one
    changes nothing.

    Afterwards each dashboard holds exactly the charts its file's position places: a chart the bundle
    dropped is taken off it, and deleted unless another dashboard shows it (tshop.superset_cli). The import also
    sets up the `T-Shop viewer` role and its login (TSHOP_SUPERSET_VIEWER_USER)."""
    from tshop.services.clickhouse.access import ensure_clickhouse_users

    ensure_superset(config)
    ensure_clickhouse_users(config)  # an external server: its read-only login for Superset
    superset(config, "-m", "tshop.superset_cli", "import", str(bundle))


def export_dashboard(config: Settings, bundle: Path = BUNDLE) -> list[str]:
    """Write every dashboard as Superset now holds it (edits made in the UI) back into the bundle."""
    output = superset(config, "-m", "tshop.superset_cli", "export", str(bundle))
    return [line.removeprefix("exported ") for line in output.splitlines() if line.startswith("exported ")]


def web_app(config: Settings) -> BackgroundProcess:
    address = f"http://127.0.0.1:{config.superset_port}"
    command = [
        str(SUPERSET_BIN / "gunicorn"), "--bind", f"127.0.0.1:{config.superset_port}",
        "--workers", "2", "--threads", "4", "--timeout", "120", "superset.app:create_app()",
    ]  # fmt: skip
    return BackgroundProcess("superset", command, config.superset_home / "run", address, superset_env(config))


def start_web_app(config: Settings):
    ensure_superset(config)
    app = web_app(config)
    app.refuse_busy_port("Superset", config.superset_port, "TSHOP_SUPERSET_PORT")
    status = app.start()
    if not wait_until(lambda: _healthy(config), timeout=120, interval=1):
        raise ServiceError(f"Superset did not answer on port {config.superset_port}; see {app.log_file}")
    return status


def _healthy(config: Settings) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{config.superset_port}/health", timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False
