"""`tshop forget-customer` (CONTRACT.md section 10, tshop/erasure.py) on a shop built through the landing zone
(generator files -> ingest -> RAW -> both dbt projects): the personal data of the erased customers is gone from
every table of both engines and from the landing files, every sale and dashboard number is the same, a second
run changes nothing, an unknown id changes nothing, and nothing a later run writes brings the data back."""

from __future__ import annotations

import datetime as dt
import io
import shutil

import polars as pl
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from tshop.config import Settings, settings
from tshop.erasure import UnknownCustomers, forget_customers
from tshop.metrics import METRICS, normalised, query

FIRST_DAY = dt.date(2024, 3, 4)
DAYS = 4
CUSTOMERS = 3000
NAME = "tshop_erasure"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


def _build(config: Settings) -> None:
    from tshop.dbt import CLICKHOUSE_PROJECT, run_dbt

    run_dbt(config, ["build"])
    run_dbt(config, ["build"], project=CLICKHOUSE_PROJECT)


def _generate(config: Settings, first_day: dt.date, days: int) -> None:
    from datagen import ShopSimulation
    from datagen.landing import LandingWriter
    from tshop.ingest import ingest

    ShopSimulation(LandingWriter(config.landing_url), seed=8, initial_customers=CUSTOMERS).run(
        first_day, days
    )
    ingest(config, run_id=f"test_erasure_{first_day}")


@pytest.fixture(scope="module")
def shop(test_settings: Settings, pg_dsn: str, clickhouse_url: str) -> Settings:
    """A shop generated as landing files, ingested and built through both dbt projects."""
    from datagen.writer import create_raw_tables
    from tshop import clients

    with psycopg.connect(test_settings.pg_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(NAME)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(NAME)))
    dsn = test_settings.pg_dsn(database=NAME)
    landing = test_settings.state_dir / f"landing-{NAME}"
    shutil.rmtree(landing, ignore_errors=True)
    config = settings({**test_settings.env, "TSHOP_PG_DSN": dsn, "TSHOP_LANDING_URL": landing.as_uri()})
    with psycopg.connect(config.pg_dsn_as("loader"), autocommit=True) as conn:
        create_raw_tables(conn)  # as every RAW writer does
    client = clients.clickhouse(config)
    try:
        client.command("drop database if exists cdm")
    finally:
        client.close()
    # in two loads, so that customers renamed in the second have two DDS versions
    from tshop.dbt import run_dbt

    _generate(config, FIRST_DAY, 2)
    run_dbt(config, ["build"])
    _generate(config, FIRST_DAY + dt.timedelta(days=2), DAYS - 2)
    _build(config)
    return config


def _rows(config: Settings, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(config.pg_dsn()) as conn:
        return conn.execute(statement, params).fetchall()


def _metrics(config: Settings, clickhouse_rows) -> dict:
    numbers = {}
    for metric in METRICS:
        numbers[("postgres", metric)] = _rows(config, query(metric, "postgres"))
        numbers[("clickhouse", metric)] = [
            tuple(row) for row in clickhouse_rows(config, query(metric, "clickhouse"))
        ]
    numbers["postgres mart"] = _rows(
        config,
        "select count(*), sum(total_cost), sum(customer_age), count(distinct customer_id), sum(quantity) "
        "from cdm.sales_datamart",
    )
    numbers["clickhouse mart"] = [
        tuple(row)
        for row in clickhouse_rows(
            config,
            "select count(), sum(total_cost), sum(customer_age), uniqExact(customer_id), sum(quantity) "
            "from cdm.sales_datamart final",
        )
    ]
    numbers["sales"] = _rows(config, "select count(*), sum(quantity) from raw.sales")
    return numbers


def _versions(config: Settings, ids: list[int]) -> int:
    return _rows(config, "select count(*) from dds.customer where customer_id = any(%s)", (ids,))[0][0]


def _pg_leaks(config: Settings, ids: list[int], personal: dict) -> list[str]:
    """Every value tied to the customers, in every text, json and date column of every base table of every
    schema, that is one of their names or birth dates; and the full names anywhere in tables without a
    customer_id."""
    names, dates, full_names = personal["names"], personal["dates"], personal["full_names"]
    leaks = []
    with psycopg.connect(config.pg_dsn()) as conn:
        columns = conn.execute(
            """select c.table_schema, c.table_name, c.column_name, c.data_type
               from information_schema.columns as c
               join information_schema.tables as t using (table_schema, table_name)
               where t.table_type = 'BASE TABLE' and c.table_schema <> all(%s)
               order by 1, 2, c.ordinal_position""",
            (list(SYSTEM_SCHEMAS),),
        ).fetchall()
        tables: dict[tuple[str, str], dict[str, str]] = {}
        for schema, table, column, data_type in columns:
            tables.setdefault((schema, table), {})[column] = data_type
        for (schema, table), types in tables.items():
            wanted = [
                column
                for column, data_type in types.items()
                if data_type in ("text", "character varying", "jsonb", "json", "date")
            ]
            if not wanted:
                continue
            relation = sql.Identifier(schema, table)
            selected = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in wanted)
            if "customer_id" in types:
                rows = conn.execute(
                    sql.SQL("select {} from {} where customer_id = any(%s)").format(selected, relation),
                    (ids,),
                ).fetchall()
                for row in rows:
                    for column, value in zip(wanted, row, strict=True):
                        if value is None:
                            continue
                        if value in names or value in dates or any(full in value for full in full_names):
                            leaks.append(f"{schema}.{table}.{column} = {value!r}")
                        if types[column] in ("jsonb", "json") and any(f'"{name}"' in value for name in names):
                            leaks.append(f"{schema}.{table}.{column} = {value!r}")
            else:
                for column in wanted:
                    hits = conn.execute(
                        sql.SQL("select {}::text from {} where {}::text like any(%s)").format(
                            sql.Identifier(column), relation, sql.Identifier(column)
                        ),
                        ([f"%{full}%" for full in full_names],),
                    ).fetchall()
                    leaks += [f"{schema}.{table}.{column} = {hit[0]!r}" for hit in hits]
    return leaks


def _clickhouse_leaks(config: Settings, clickhouse_rows, ids: list[int], personal: dict) -> list[str]:
    names, dates, full_names = personal["names"], personal["dates"], personal["full_names"]
    columns = clickhouse_rows(
        config,
        "select database, table, name, type from system.columns "
        "where database not in ('system', 'INFORMATION_SCHEMA', 'information_schema') order by database, table, position",
    )
    tables: dict[tuple[str, str], dict[str, str]] = {}
    for database, table, column, column_type in columns:
        tables.setdefault((database, table), {})[column] = column_type
    leaks = []
    id_list = ", ".join(str(customer_id) for customer_id in ids)
    for (database, table), types in tables.items():
        if "customer_id" not in types:
            continue
        wanted = [c for c, t in types.items() if "String" in t or ("Date" in t and "DateTime" not in t)]
        if not wanted:
            continue
        selected = ", ".join(f"toString(`{c}`)" for c in wanted)
        rows = clickhouse_rows(
            config, f"select {selected} from `{database}`.`{table}` where customer_id in ({id_list})"
        )
        for row in rows:
            for column, value in zip(wanted, row, strict=True):
                if value is not None and (
                    value in names or value in dates or any(full in value for full in full_names)
                ):
                    leaks.append(f"{database}.{table}.{column} = {value!r}")
    return leaks


def _landing_leaks(config: Settings, ids: list[int]) -> list[str]:
    root = config.landing_url.removeprefix("file://")
    from pathlib import Path

    leaks = []
    files = sorted(Path(root, "incoming", "customer").rglob("*.csv")) + sorted(
        Path(root, "_generator").glob("customer-*.parquet")
    )
    assert files
    for path in files:
        if path.suffix == ".csv":
            frame = pl.read_csv(io.BytesIO(path.read_bytes()), infer_schema=False).with_columns(
                pl.col("customer_id").cast(pl.Int64)
            )
        else:
            frame = pl.read_parquet(path)
        rows = frame.filter(pl.col("customer_id").is_in(ids))
        for row in rows.iter_rows(named=True):
            if row.get("first_name") != "erased" or row.get("last_name", "erased") != "erased":
                leaks.append(f"{path}: {row}")
            if row.get("birth_date") is not None:
                leaks.append(f"{path}: {row}")
    return leaks


@pytest.fixture(scope="module")
def chosen(shop: Settings) -> dict:
    """Two customers: one renamed (two DDS versions; with sales when there is one), one with sales; their
    personal data as it was."""
    renamed = _rows(
        shop,
        """select customer_id from dds.customer group by customer_id having count(*) > 1
           order by customer_id in (select customer_id from cdm.sales_datamart) desc, customer_id limit 1""",
    )
    plain = _rows(
        shop,
        """select customer_id from dds.customer
           where customer_id in (select customer_id from cdm.sales_datamart)
           group by customer_id having count(*) = 1 order by customer_id limit 1""",
    )
    assert renamed and plain, "the shop has no renamed customer"
    ids = [renamed[0][0], plain[0][0]]
    rows = _rows(
        shop, "select first_name, last_name, birth_date from dds.customer where customer_id = any(%s)", (ids,)
    )
    return {
        "ids": ids,
        "names": {value for first, last, _ in rows for value in (first, last)},
        "dates": {birth.isoformat() for _, _, birth in rows},
        "full_names": {f"{first} {last}" for first, last, _ in rows},
    }


def test_an_unknown_customer_is_refused_naming_it_and_nothing_changes(shop, chosen):
    from tshop.cli import app

    before = _rows(
        shop, "select * from raw.customer where customer_id = any(%s) order by 1", (chosen["ids"],)
    )
    with pytest.raises(UnknownCustomers, match="999999999"):
        forget_customers(shop, [chosen["ids"][0], 999999999])
    result = CliRunner().invoke(app, ["forget-customer", str(chosen["ids"][0]), "999999998"], env=shop.env)
    assert result.exit_code == 1
    assert "999999998" in result.output
    assert (
        _rows(shop, "select * from raw.customer where customer_id = any(%s) order by 1", (chosen["ids"],))
        == before
    )
    assert _rows(shop, "select count(*) from sl.erasure_log") == [(0,)]


@pytest.fixture(scope="module")
def erased(shop: Settings, chosen: dict, clickhouse_rows) -> dict:
    """The metrics and versions before, then the erasure (through the command line), then the same after."""
    from tshop.cli import app

    before = {
        "metrics": _metrics(shop, clickhouse_rows),
        "versions": _versions(shop, chosen["ids"]),
        "ages": _rows(shop, "select sale_id, valid_from, customer_age from cdm.sales_datamart order by 1, 2"),
    }
    result = CliRunner().invoke(
        app, ["forget-customer", *map(str, chosen["ids"]), "--run-id", "test_erasure"], env=shop.env
    )
    assert result.exit_code == 0, result.output
    return {"before": before, "output": result.output}


def test_the_personal_data_is_gone_from_every_table_and_landing_file(shop, chosen, erased, clickhouse_rows):
    assert "erased 2 customer(s)" in erased["output"]
    assert _pg_leaks(shop, chosen["ids"], chosen) == []
    assert _clickhouse_leaks(shop, clickhouse_rows, chosen["ids"], chosen) == []
    assert _landing_leaks(shop, chosen["ids"]) == []
    # what the erased values are, in each place
    assert set(
        _rows(
            shop,
            "select first_name, last_name, birth_date from raw.customer where customer_id = any(%s)",
            (chosen["ids"],),
        )
    ) == {("erased", "erased", None)}
    assert set(
        _rows(
            shop, "select customer_name from cdm.sales_datamart where customer_id = any(%s)", (chosen["ids"],)
        )
    ) == {("erased erased",)}
    ids = ", ".join(map(str, chosen["ids"]))
    assert set(
        clickhouse_rows(
            shop,
            f"select first_name, last_name, birth_date from cdm.dim_customer where customer_id in ({ids})",
        )
    ) == {("erased", "erased", None)}
    log = _rows(
        shop,
        "select customer_id, run_id, clickhouse_done_at is not null, landing_done_at is not null from sl.erasure_log order by 1",
    )
    assert log == [(customer_id, "test_erasure", True, True) for customer_id in sorted(chosen["ids"])]


def test_every_sale_and_dashboard_number_is_unchanged(shop, chosen, erased, clickhouse_rows):
    assert _metrics(shop, clickhouse_rows) == erased["before"]["metrics"]
    assert (
        _rows(shop, "select sale_id, valid_from, customer_age from cdm.sales_datamart order by 1, 2")
        == erased["before"]["ages"]
    )
    assert _versions(shop, chosen["ids"]) == erased["before"]["versions"]


def test_a_second_erasure_changes_nothing_and_says_so(shop, chosen, erased):
    log = _rows(shop, "select * from sl.erasure_log order by 1")
    report = forget_customers(shop, chosen["ids"], run_id="test_erasure_again")
    assert report.ok and report.erased == [] and report.completed == []
    assert report.already == sorted(chosen["ids"])
    assert (
        sum(report.postgres.values()) == sum(report.clickhouse.values()) == sum(report.landing.values()) == 0
    )
    assert _rows(shop, "select * from sl.erasure_log order by 1") == log
    assert any("already erased" in line for line in report.lines())


def test_a_step_that_fails_is_left_named_and_the_next_run_completes_it(
    shop, chosen, erased, clickhouse_rows, monkeypatch
):
    import tshop.erasure

    third = _rows(
        shop,
        "select customer_id from cdm.sales_datamart where customer_id <> all(%s) order by 1 limit 1",
        (chosen["ids"],),
    )[0][0]

    def down(*args, **kwargs):
        raise ConnectionError("ClickHouse is down")

    monkeypatch.setattr(tshop.erasure, "erase_clickhouse", down)
    report = forget_customers(shop, [third], run_id="test_erasure_left")
    assert not report.ok and report.erased == [third]
    assert any("ClickHouse" in line and "down" in line for line in report.lines())
    assert _rows(
        shop, "select clickhouse_done_at is null from sl.erasure_log where customer_id = %s", (third,)
    ) == [(True,)]
    assert clickhouse_rows(shop, f"select count() from cdm.sales_datamart where customer_id = {third} "
                                 "and customer_name != 'erased erased'")[0][0] > 0  # fmt: skip
    monkeypatch.undo()
    report = forget_customers(shop, [third], run_id="test_erasure_rerun")
    assert report.ok and report.completed == [] and report.already == [third]
    assert report.clickhouse["cdm.sales_datamart"] > 0
    assert clickhouse_rows(shop, f"select count() from cdm.sales_datamart where customer_id = {third} "
                                 "and customer_name != 'erased erased'")[0][0] == 0  # fmt: skip
    assert _rows(
        shop, "select clickhouse_done_at is null from sl.erasure_log where customer_id = %s", (third,)
    ) == [(False,)]


def test_a_rewritten_landing_file_is_not_ingested_again(shop, erased):
    from tshop.ingest import ingest

    report = ingest(shop, run_id="test_erasure_ingest")
    assert report.files == []


def test_a_later_pipeline_run_keeps_them_erased_with_the_same_versions(shop, chosen, erased, clickhouse_rows):
    _build(shop)
    assert _versions(shop, chosen["ids"]) == erased["before"]["versions"]
    assert _pg_leaks(shop, chosen["ids"], chosen) == []
    assert _clickhouse_leaks(shop, clickhouse_rows, chosen["ids"], chosen) == []
    assert _metrics(shop, clickhouse_rows) == erased["before"]["metrics"]


def test_the_source_renaming_them_does_not_bring_names_back(shop, chosen, erased, clickhouse_rows):
    from tshop.ingest import ingest

    first, second = chosen["ids"]
    # the source, by hand: a rename in RAW with a newer updated_at
    with psycopg.connect(shop.pg_dsn(), autocommit=True) as conn:
        conn.execute(
            "update raw.customer set first_name = 'Zelda', last_name = 'Quux', birth_date = '1980-01-01', "
            "updated_at = updated_at + interval '1 day' where customer_id = %s",
            (first,),
        )
    # an outside file bringing the other's names again, and a rejected row of theirs
    folder = shop.landing_url.removeprefix("file://") + "/incoming/customer/outside"
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    Path(folder, "again.csv").write_text(
        "customer_id,first_name,last_name,birth_date,updated_at\n"
        f"{second},Zelda,Quux,1980-01-01,2024-03-09 10:00:00\n"
        f"{second},Zelda,Quux,,2024-03-09 11:00:00\n"
    )
    ingest(shop, run_id="test_erasure_outside")
    chosen = {
        **chosen,
        "names": chosen["names"] | {"Zelda", "Quux"},
        "dates": chosen["dates"] | {"1980-01-01"},
    }
    chosen["full_names"] = chosen["full_names"] | {"Zelda Quux"}
    assert set(
        _rows(
            shop,
            "select first_name, last_name, birth_date from raw.customer where customer_id = any(%s)",
            (chosen["ids"],),
        )
    ) == {("erased", "erased", None)}
    # and the generator's next days, which may rename or sell to them, then a full build of both projects
    _generate(shop, FIRST_DAY + dt.timedelta(days=DAYS), 1)
    # and a purchase of an erased customer after the erasure, their latest: its line has no age to count
    # (null in both engines), the build's tests accept it, and every dashboard number is the same in both
    with psycopg.connect(shop.pg_dsn_as("loader"), autocommit=True) as conn:
        conn.execute(
            """insert into raw.sales (sale_id, order_id, sold_at, customer_id, product_id, quantity, updated_at)
               select max_sale + 1, max_order + 1, timestamp '2024-03-08 23:59:59', %s, product_id, 1,
                   timestamp '2024-03-08 23:59:59'
               from (select max(sale_id) as max_sale, max(order_id) as max_order from raw.sales) as ids,
                   (select min(product_id) as product_id from raw.product) as product""",
            (first,),
        )
    _build(shop)
    assert _rows(
        shop,
        "select customer_name, customer_age from cdm.sales_datamart where customer_id = %s and sold_at = '2024-03-08 23:59:59'",
        (first,),
    ) == [("erased erased", None)]
    assert [
        tuple(row)
        for row in clickhouse_rows(
            shop,
            f"select customer_name, customer_age from cdm.sales_datamart_current where customer_id = {first} "
            "and sold_at = '2024-03-08 23:59:59'",
        )
    ] == [("erased erased", None)]
    numbers = _metrics(shop, clickhouse_rows)
    for metric in METRICS:
        assert normalised(numbers[("clickhouse", metric)]) == normalised(numbers[("postgres", metric)]), (
            metric
        )
    assert ("unknown",) in {row[:1] for row in numbers[("postgres", "revenue by age band")]}
    assert _pg_leaks(shop, chosen["ids"], chosen) == []
    assert _clickhouse_leaks(shop, clickhouse_rows, chosen["ids"], chosen) == []
    # a new version (the renames moved updated_at) holds the erased values
    assert set(
        _rows(
            shop,
            "select first_name, last_name, birth_date from dds.customer where customer_id = any(%s)",
            (chosen["ids"],),
        )
    ) == {("erased", "erased", None)}
