"""The nine dashboard metrics of CONTRACT section 3, each one SQL query that PostgreSQL and ClickHouse both run.

The query reads `{mart}`, the current sale lines: `cdm.sales_datamart_current` in ClickHouse, the current
rows of `cdm.sales_datamart` in PostgreSQL. The tests compare the two engines tile by tile; the benchmark
times them. Only portable SQL is used (no `::` casts, no argMax), so a tile cannot mean two things.
"""

from __future__ import annotations

from decimal import Decimal

MART = {
    "postgres": "(select * from cdm.sales_datamart where is_current) as current_lines",
    "clickhouse": "cdm.sales_datamart_current",
}

AGE_BAND = """case
    when customer_age < 18 then 'under 18'
    when customer_age < 25 then '18-24'
    when customer_age < 35 then '25-34'
    when customer_age < 45 then '35-44'
    when customer_age < 55 then '45-54'
    when customer_age < 65 then '55-64'
    else '65 and over'
end"""

METRICS: dict[str, str] = {
    "revenue per day": "select sale_date, sum(total_cost) from {mart} group by sale_date order by sale_date",
    "revenue per day and category": (
        "select sale_date, product_category, sum(total_cost) from {mart} "
        "group by sale_date, product_category order by sale_date, product_category"
    ),
    "revenue by age band": f"select {AGE_BAND} as age_band, sum(total_cost) from {{mart}} group by age_band order by age_band",
    "revenue": "select sum(total_cost) from {mart}",
    "customers": "select count(distinct customer_id) from {mart}",
    "items per cheque": "select cast(sum(quantity) as double precision) / count(distinct order_id) from {mart}",
    "average cheque": "select cast(sum(total_cost) as double precision) / count(distinct order_id) from {mart}",
    # the age of each customer's latest purchase (latest sold_at, then the highest sale_id), averaged
    "average age": (
        "select avg(customer_age) from ("
        "select customer_age, row_number() over (partition by customer_id order by sold_at desc, sale_id desc) as latest "
        "from {mart}) as purchases where latest = 1"
    ),
    "most popular size": (
        "select product_size from {mart} group by product_size order by sum(quantity) desc, product_size limit 1"
    ),
}


def query(metric: str, engine: str) -> str:
    return METRICS[metric].format(mart=MART[engine])


def normalised(rows: list[tuple]) -> list[tuple]:
    """Rows comparable across engines: decimals and floats to floats rounded to 6 places, dates as text."""

    def value(cell):
        if isinstance(cell, Decimal | float):
            return round(float(cell), 6)
        if isinstance(cell, int | str) or cell is None:
            return cell
        return str(cell)

    return [tuple(value(cell) for cell in row) for row in rows]
