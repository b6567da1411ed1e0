"""The nine dashboard metrics of CONTRACT section 3: a reference definition each, and what ClickHouse runs.

`DEFINITIONS` are portable SQL over `{mart}`, the current sale lines (the current rows of `cdm.sales_datamart`
in PostgreSQL): they say what a tile means, and PostgreSQL runs them as they are. ClickHouse answers the same
questions faster: the tiles that are sums read `cdm.sales_daily_summary` (current lines summed per day,
category, size and age), average age uses argMax, the rest read `cdm.sales_datamart_current`. The tests check
that every ClickHouse tile equals its definition in PostgreSQL; the benchmark times both.
"""

from __future__ import annotations

from decimal import Decimal

MART = {
    "postgres": "(select * from cdm.sales_datamart where is_current) as current_lines",
    "clickhouse": "cdm.sales_datamart_current",
}

# A line with no age (an erased customer's purchase after the erasure) is in no age band but 'unknown'.
AGE_BAND = """case
    when customer_age is null then 'unknown'
    when customer_age < 18 then 'under 18'
    when customer_age < 25 then '18-24'
    when customer_age < 35 then '25-34'
    when customer_age < 45 then '35-44'
    when customer_age < 55 then '45-54'
    when customer_age < 65 then '55-64'
    else '65 and over'
end"""

DEFINITIONS: dict[str, str] = {
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


SUMMARY = "cdm.sales_daily_summary"

CLICKHOUSE: dict[str, str] = {
    "revenue per day": f"select sale_date, sum(revenue) from {SUMMARY} group by sale_date order by sale_date",
    "revenue per day and category": (
        f"select sale_date, product_category, sum(revenue) from {SUMMARY} "
        "group by sale_date, product_category order by sale_date, product_category"
    ),
    "revenue by age band": f"select {AGE_BAND} as age_band, sum(revenue) from {SUMMARY} group by age_band order by age_band",
    "revenue": f"select sum(revenue) from {SUMMARY}",
    "customers": DEFINITIONS["customers"],
    "items per cheque": DEFINITIONS["items per cheque"],
    "average cheque": DEFINITIONS["average cheque"],
    # All lines of one customer at one sold_at share one age (the age is that of the customer version valid
    # at sold_at), so the latest sold_at alone picks the age and the definition's sale_id tie-break cannot
    # change it; argMax groups in one pass where the window function sorts every line. The age goes in a
    # tuple because argMax skips a null argument (it would take an older purchase's age where the latest
    # has none); avg then skips the null, as PostgreSQL's does.
    "average age": (
        "select avg(age) from (select argMax(tuple(customer_age), sold_at).1 as age from {mart} group by customer_id)"
    ),
    "most popular size": (
        f"select product_size from {SUMMARY} group by product_size order by sum(quantity) desc, product_size limit 1"
    ),
}
METRICS = list(DEFINITIONS)


def query(metric: str, engine: str) -> str:
    """The SQL of `metric` for `engine`: the definition in PostgreSQL, the fast form in ClickHouse."""
    template = CLICKHOUSE[metric] if engine == "clickhouse" else DEFINITIONS[metric]
    return template.format(mart=MART[engine])


def normalised(rows: list[tuple]) -> list[tuple]:
    """Rows comparable across engines: decimals and floats to floats rounded to 6 places, dates as text."""

    def value(cell):
        if isinstance(cell, Decimal | float):
            return round(float(cell), 6)
        if isinstance(cell, int | str) or cell is None:
            return cell
        return str(cell)

    return [tuple(value(cell) for cell in row) for row in rows]
