-- RAW: the sources, SCD1 (CONTRACT.md 1.1 and 1.5). Every writer of RAW (the generator, outside loaders,
-- the tests) creates it from this one file; it is idempotent and run once per version of this file.

do $$ begin if to_regnamespace('raw') is null then create schema raw; end if; end $$;

-- Two columns RAW sets itself, on every insert (the defaults) and every update (raw.mark_written), so no
-- writer can forget or fake them:
--   loaded_at   when the row was last written (the transaction's start): for people and freshness checks;
--   loaded_xid  the transaction that wrote it: what the DDS increments read by. A load remembers the oldest
--               transaction still running when it read (sl.load_metadata.read_from_xid), and the next load
--               reads every row written by that transaction or a later one. Unlike a clock, this loses no
--               row written late (an `updated_at` behind the watermark) and no row of a transaction that
--               committed after the read began; rows it reads twice are the same version and change nothing.

create table if not exists raw.customer (
    customer_id bigint primary key,
    first_name text not null,
    last_name text not null,
    birth_date date, -- null once the customer is erased (CONTRACT.md section 10); writers must give one
    updated_at timestamp not null,
    loaded_at timestamptz not null default now(),
    loaded_xid xid8 not null default pg_current_xact_id()
);
-- a RAW made before erasure: birth_date was not null
alter table raw.customer alter column birth_date drop not null;

create table if not exists raw.product (
    product_id bigint primary key,
    name text not null,
    category text not null,
    size text not null,
    price numeric(12, 2) not null,
    updated_at timestamp not null,
    loaded_at timestamptz not null default now(),
    loaded_xid xid8 not null default pg_current_xact_id()
);

create table if not exists raw.sales (
    sale_id bigint primary key,
    order_id bigint not null,
    sold_at timestamp not null,
    customer_id bigint not null,
    product_id bigint not null,
    quantity integer not null,
    updated_at timestamp not null,
    loaded_at timestamptz not null default now(),
    loaded_xid xid8 not null default pg_current_xact_id()
);

-- a RAW made by an earlier version: the two columns added (this rewrites each table once, and marks every
-- row as new, so the next build reads RAW whole once: safe, since a re-read version changes nothing)
alter table raw.customer add column if not exists loaded_at timestamptz not null default now();
alter table raw.customer add column if not exists loaded_xid xid8 not null default pg_current_xact_id();
alter table raw.product add column if not exists loaded_at timestamptz not null default now();
alter table raw.product add column if not exists loaded_xid xid8 not null default pg_current_xact_id();
alter table raw.sales add column if not exists loaded_at timestamptz not null default now();
alter table raw.sales add column if not exists loaded_xid xid8 not null default pg_current_xact_id();

create or replace function raw.mark_written() returns trigger language plpgsql as $$
begin
    new.loaded_at := now();
    new.loaded_xid := pg_current_xact_id();
    return new;
end
$$;

-- on update only: on insert the defaults do the same without a trigger's cost per copied row
create or replace trigger customer_mark_written before update on raw.customer
    for each row execute function raw.mark_written();
create or replace trigger product_mark_written before update on raw.product
    for each row execute function raw.mark_written();
create or replace trigger sales_mark_written before update on raw.sales
    for each row execute function raw.mark_written();

-- The column rules, named so a refused row's error says which rule it broke. "Not blank": something other
-- than white space, Unicode's included; "the future": more than 5 minutes past the database's own clock
-- (UTC), so one wrong clock upstream cannot move every watermark past the days still to come.
alter table raw.customer drop constraint if exists customer_first_name_not_blank;
alter table raw.customer add constraint customer_first_name_not_blank
    check (first_name ~ '[^[:space:]\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]');
alter table raw.customer drop constraint if exists customer_last_name_not_blank;
alter table raw.customer add constraint customer_last_name_not_blank
    check (last_name ~ '[^[:space:]\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]');
alter table raw.customer drop constraint if exists customer_birth_date_in_the_past;
alter table raw.customer add constraint customer_birth_date_in_the_past
    check (birth_date < (clock_timestamp() at time zone 'UTC')::date);
alter table raw.customer drop constraint if exists customer_updated_at_not_in_the_future;
alter table raw.customer add constraint customer_updated_at_not_in_the_future
    check (updated_at <= (clock_timestamp() at time zone 'UTC') + interval '5 minutes');

alter table raw.product drop constraint if exists product_price_positive;
alter table raw.product add constraint product_price_positive check (price > 0);
alter table raw.product drop constraint if exists product_updated_at_not_in_the_future;
alter table raw.product add constraint product_updated_at_not_in_the_future
    check (updated_at <= (clock_timestamp() at time zone 'UTC') + interval '5 minutes');

alter table raw.sales drop constraint if exists sales_quantity_positive;
alter table raw.sales add constraint sales_quantity_positive check (quantity > 0);
alter table raw.sales drop constraint if exists sales_updated_at_not_in_the_future;
alter table raw.sales add constraint sales_updated_at_not_in_the_future
    check (updated_at <= (clock_timestamp() at time zone 'UTC') + interval '5 minutes');

-- the DDS increments read RAW by the writing transaction; the generator finds a day's lines by sold_at;
-- the DDS watermark (max_updated_at) is read from DDS, not from here
create index if not exists customer_loaded_xid_idx on raw.customer (loaded_xid);
create index if not exists product_loaded_xid_idx on raw.product (loaded_xid);
create index if not exists sales_loaded_xid_idx on raw.sales (loaded_xid);
create index if not exists sales_sold_at_idx on raw.sales (sold_at);
drop index if exists raw.customer_updated_at_idx;
drop index if exists raw.product_updated_at_idx;
drop index if exists raw.sales_updated_at_idx;

-- one row per simulated business day: a loaded day is never generated twice
create table if not exists raw.generated_day (
    business_day date primary key,
    seed bigint not null,
    customers_added bigint not null,
    orders bigint not null,
    sale_lines bigint not null,
    last_name_changes bigint not null,
    price_changes bigint not null,
    sale_corrections bigint not null,
    loaded_at timestamptz not null default clock_timestamp()
);

-- -- the generator's own record of the shop ---------------------------------------------------------------
-- One row: what the generator made (datagen/record.py), so that it never takes an outside writer's rows for
-- its own shop: its purchases and changes draw only from these ids, and each new id comes after both the
-- last_* id here and RAW's greatest. Written in the same transaction as each simulated day. A RAW made by a
-- generator that kept no record gets this row derived from RAW once, by the first day a newer one writes.
create table if not exists raw.generator_shop (
    shop boolean primary key default true check (shop), -- the one row
    seed bigint not null check (seed >= 0),
    initial_customers bigint not null check (initial_customers > 0),
    customers bigint not null check (customers >= initial_customers), -- customers it made: the shop's size
    customer_ids int8multirange not null, -- their ids
    product_ids int8multirange not null, -- the catalogue's ids
    sale_ids int8multirange not null, -- the sale lines it sold: the only lines it corrects
    -- new ids start after these: the greatest id it handed out or found in RAW when it wrote its last day
    last_customer_id bigint not null,
    last_order_id bigint not null,
    last_sale_id bigint not null,
    derived_from_raw boolean not null, -- derived once from a RAW made by a generator that kept no record
    updated_at timestamptz not null default clock_timestamp()
);

-- -- what the landing zone's ingest keeps (CONTRACT.md section 7) -------------------------------------------
-- A deleted key: its row left RAW; the next DDS build closes the key's current version at deleted_at. The
-- DDS increments find new deletions the way they find new rows, by the writing transaction (loaded_xid).
-- table_name is the landing zone's table name: customer, product or sales.
create table if not exists raw.deleted_key (
    table_name text not null check (table_name in ('customer', 'product', 'sales')),
    key_value bigint not null,
    deleted_at timestamp not null,
    loaded_at timestamptz not null default now(),
    loaded_xid xid8 not null default pg_current_xact_id(),
    primary key (table_name, key_value, deleted_at)
);
create index if not exists deleted_key_loaded_xid_idx on raw.deleted_key (loaded_xid);

-- A row of a landed file that broke a RAW rule or could not be parsed: kept aside with why, never loaded.
create table if not exists raw.rejected_row (
    rejected_row_id bigint generated always as identity primary key,
    table_name text not null,
    file_path text not null,
    line_number bigint not null,
    reason text not null,
    row_data jsonb,
    rejected_at timestamptz not null default now()
);
create index if not exists rejected_row_file_path_idx on raw.rejected_row (file_path);

-- -- erasure on request (CONTRACT.md section 10; tshop/erasure.py) ------------------------------------------
-- sl.erasure_log: the customers whose personal data (first_name, last_name, birth_date) was erased, one row
-- each. It is created here, with RAW, not by dbt's sl_create_tables: the triggers below read it on every
-- write of raw.customer, so it must exist wherever raw.customer does, and every RAW writer (the generator,
-- the ingest, the tests, `tshop forget-customer`) runs this file before it writes, while dbt may never have
-- run. Made by RAW's owner (the loader), like the landing books; the erasure writes it. `clickhouse_done_at` /
-- `landing_done_at`: when that engine's step finished (null: left for a re-run).
do $$ begin if to_regnamespace('sl') is null then create schema sl; end if; end $$;
create table if not exists sl.erasure_log (
    customer_id bigint primary key,
    erased_at timestamptz not null default clock_timestamp(),
    run_id text,
    rows_rewritten jsonb not null default '{}', -- {run id: {table or file: rows rewritten}}, per operation
    clickhouse_done_at timestamptz,
    landing_done_at timestamptz
);

-- An erased customer stays erased, whoever writes RAW later: the generator renaming them, an outside file
-- bringing their names again, an upsert, a key deleted and loaded again. One rule, in one place: after each
-- statement that inserts or updates raw.customer, the rows it wrote whose customer is in sl.erasure_log are
-- erased again, in the same transaction (nothing else ever sees the names). Statement-level with a transition
-- table: one join per statement, not a function call per row of a 5,000,000-row COPY. `security definer`:
-- a loader that may write RAW only need not read the SL.
create or replace function raw.keep_customers_erased() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    -- nothing erased yet, or nothing written (the statement of this very function, once it has nothing left
    -- to erase, fires it again with no rows: that ends the recursion)
    if not exists (select 1 from sl.erasure_log) or not exists (select 1 from written) then
        return null;
    end if;
    update raw.customer as customer
    set first_name = 'erased', last_name = 'erased', birth_date = null
    from written
    where customer.customer_id = written.customer_id
        and written.customer_id in (select customer_id from sl.erasure_log)
        and (written.first_name, written.last_name, written.birth_date)
            is distinct from ('erased', 'erased', null::date);
    return null;
end
$$;
create or replace trigger customer_keep_erased_on_insert after insert on raw.customer
    referencing new table as written for each statement execute function raw.keep_customers_erased();
create or replace trigger customer_keep_erased_on_update after update on raw.customer
    referencing new table as written for each statement execute function raw.keep_customers_erased();

-- the same for a landed customer row that broke a rule: its values as read lose an erased customer's names
create or replace function raw.keep_rejected_customers_erased() returns trigger
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    update raw.rejected_row as rejected
    set row_data = rejected.row_data || '{"first_name": "erased", "last_name": "erased", "birth_date": null}'
    from written
    where rejected.rejected_row_id = written.rejected_row_id
        and written.table_name = 'customer'
        and written.row_data ->> 'customer_id' ~ '^\s*[0-9]{1,18}\s*$'
        and trim(written.row_data ->> 'customer_id')::bigint in (select customer_id from sl.erasure_log);
    return null;
end
$$;
create or replace trigger rejected_row_keep_erased after insert on raw.rejected_row
    referencing new table as written for each statement execute function raw.keep_rejected_customers_erased();

-- Erasure (`tshop forget-customer`) runs as the transformer, which may rewrite the personal values and keep
-- the log, and nothing else of what the loader owns: through the group role tshop_erasure that
-- `tshop setup-roles` makes (tshop/services/postgres_roles.py, which grants the same when RAW came first). No
-- such role, as on a server without T-Shop's roles: nothing to grant.
do $$ begin
    if to_regrole('tshop_erasure') is not null then
        grant update (first_name, last_name, birth_date) on raw.customer to tshop_erasure;
        grant update (row_data) on raw.rejected_row to tshop_erasure;
        grant select, insert, update on sl.erasure_log to tshop_erasure;
    end if;
end $$;
