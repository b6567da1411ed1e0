"""Superset's configuration for T-Shop, loaded by Superset (in its own environment) via SUPERSET_CONFIG_PATH.

It imports nothing from T-Shop: every value comes from the environment that `tshop.dashboard` (or Docker
Compose) gives the Superset process.
"""

import os

SECRET_KEY = os.environ["TSHOP_SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["TSHOP_SUPERSET_DATABASE_URI"]

# a local install: no CSRF token dance for the REST API the tests and the import use
WTF_CSRF_ENABLED = False
TALISMAN_ENABLED = False
FEATURE_FLAGS = {"DASHBOARD_NATIVE_FILTERS": True}
# the dashboard reads ClickHouse in UTC; so do we
DEFAULT_TIME_ZONE = "UTC"
# caching off: the numbers on the dashboard are always the mart's current numbers
CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
# the "Most popular size" tile is a Handlebars template laid out with inline styles on divs; Superset's
# sanitiser (GitHub's schema) drops every style attribute unless allowed, and nothing more is allowed here
HTML_SANITIZATION_SCHEMA_EXTENSIONS = {"attributes": {"div": ["style"]}}
# no thumbnails, no telemetry to the internet
THUMBNAIL_SELENIUM_USER = None
SCARF_ANALYTICS = False
