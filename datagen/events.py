"""The shop's web events (CONTRACT.md section 8): each business day's clickstream, consistent with its sale
lines, and the reviews that buyers write a few days after a purchase. Vectorised with numpy and Polars.

Documents (flat JSON objects, one per line, UTF-8; timestamps `YYYY-MM-DD HH:MM:SS.ffffff`, UTC):
- clickstream: `event_id` ("20240304000000001": the day, then the event's place in it, 9 digits: unique
  across days), `event_type` (`session_start`, `product_view`, `add_to_cart`, `checkout`), `occurred_at`
  (within the business day), `session_id` ("2024030400000001": the day, then the session's number, 8
  digits), `customer_id` (null for an anonymous visitor), `product_id` (views and carts; null otherwise),
  `order_id` (`checkout` only; null otherwise), and two fields the contract does not name, the session's
  context on its `session_start` (null on the other events): `device` (`mobile` 60%, `desktop` 33%,
  `tablet` 7%) and `referrer` (`direct` 35%, `search` 30%, `social` 15%, `email` 10%, `ads` 10%). Every
  document has every field. A day's events come session by session, the sessions by their start.
- reviews: `review_id` ("r-<sale_id>": at most one review per sale line), `order_id`, `customer_id`,
  `product_id`, `rating` (1-5), `title`, `body`, `created_at`, and `verified_purchase` (always true).

Sessions of a day (`EventRates`, the defaults):
- each cheque of the day: its customer's session starts 1 min + Gamma(2, 4 min) (mean 9 min) before the
  purchase (clamped to the day's start) and ends with the `checkout` carrying the cheque's `order_id` at
  exactly its `sold_at`; before it, Poisson(1.5) views of other products (by popularity), then for each
  line a `product_view` and an `add_to_cart` of its product. One checkout per cheque, none without one;
- browsing sessions, none with a checkout: Poisson(BROWSING_SESSIONS_PER_BUYER x the day's buyers), so
  traffic follows the day's buyers (weekends five times weekdays), 40% of them anonymous (customer_id
  null), the others by customers drawn uniformly from those registered before the day, less the day's
  buyers; 1 + Poisson(1.5) product views each (by popularity), each added to the cart (and abandoned) with
  probability 12%; starting at the purchase times' daily profile (`purchases.purchase_times`) and lasting
  30 s + Gamma(views, 1 min), cut at the day's end. A day without a sale has no session (only shops of a
  few hundred customers have such days): no clickstream file that day;
- events inside a session are spread between its start and its end by exponential gaps.

BROWSING_SESSIONS_PER_BUYER is the volume knob (`tshop-datagen generate --browsing-sessions-per-buyer`): a
buyer's session is about 7.8 events (1 + 1.5 + 2 x 2.15 lines + 1), a browsing one about 3.8, so a day has
about buyers x (7.8 + 3.8 x knob) events. Measured at 5,000,000 customers with the default 1.0 (seed 7):
about 50,000 buyers and 585,000 events on a weekday, 250,000 buyers and 2,890,000 events on a weekend
day, 1.25 million on an average day (90 days: about 112 million events; reviews about 7,000 a day, 600,000).
Cost there: about 350,000 events a second simulated and encoded on these 2 shared cores, most of it in `encode`
(JSON lines, null fields left out, gzip); docs/benchmarks.md, "Web events".

Reviews: 3% of the sale lines are reviewed, the review created 2-10 days after the purchase's day (weights
9, 8, ..., 1: sooner is likelier) at a moment of the purchase times' daily profile; ratings J-shaped like
a real shop's (5: 57%, 4: 20%, 3: 8%, 2: 5%, 1: 10%); a title and a two-sentence body from small pools
that match the rating. A review is written on the day it is created: day D writes the reviews of lines
bought on days D-10..D-2 whose review falls on D. Which lines of a purchase day are reviewed, when and how
is drawn from that day's own generator over its lines in sale_id order, so it is the same whichever later
day computes it.

Determinism: the events of day D draw from numpy's generator seeded by (seed, EVENTS_KEY, D, 1), the
reviews of purchase day P from (seed, EVENTS_KEY, P, 2); the sales' generators are untouched, so turning
events on or off changes no RAW row. Files are gzip with mtime 0 (`encode`), byte-identical for a seed
(and the Polars version that writes them).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from datagen.purchases import MICROS_PER_DAY, purchase_times
from datagen.record import IdRanges

EVENTS_KEY = 2  # beside the catalogue's (seed, 0), (seed, 1), (seed, 1, 1) and the days' (seed, ordinal)
CLICKSTREAM_STREAM, REVIEWS_STREAM = 1, 2
KINDS = ("clickstream", "reviews")  # the landing zone's folders: incoming/<kind>/<day>/<kind>-<day>.jsonl.gz
EVENT_TYPES = ("session_start", "product_view", "add_to_cart", "checkout")
SESSION_START, PRODUCT_VIEW, ADD_TO_CART, CHECKOUT = range(4)
DEVICES, DEVICE_P = ("mobile", "desktop", "tablet"), (0.60, 0.33, 0.07)
REFERRERS, REFERRER_P = ("direct", "search", "social", "email", "ads"), (0.35, 0.30, 0.15, 0.10, 0.10)
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S%.6f"
MICROS_PER_MINUTE = 60_000_000
# gzip level of the files: Polars' level 1 writes a full-scale weekend day in about a second; 6 would
# save a third of the bytes for three times the time
COMPRESSION_LEVEL = 1

BROWSING_SESSIONS_PER_BUYER = 1.0
REVIEW_RATE = 0.03
REVIEW_DELAYS = np.arange(2, 11)  # days after the purchase's day
REVIEW_DELAY_P = (11 - REVIEW_DELAYS) / (11 - REVIEW_DELAYS).sum()
RATING_P = (0.10, 0.05, 0.08, 0.20, 0.57)  # ratings 1..5
REVIEW_WINDOW = int(REVIEW_DELAYS.max())  # the purchase days a day's reviews may come from

CLICKSTREAM_SCHEMA = pl.Schema(
    {"event_id": pl.String, "event_type": pl.String, "occurred_at": pl.String, "session_id": pl.String,
     "customer_id": pl.Int64, "product_id": pl.Int64, "order_id": pl.Int64, "device": pl.String,
     "referrer": pl.String}
)  # fmt: skip
REVIEW_SCHEMA = pl.Schema(
    {"review_id": pl.String, "order_id": pl.Int64, "customer_id": pl.Int64, "product_id": pl.Int64,
     "rating": pl.Int64, "title": pl.String, "body": pl.String, "created_at": pl.String,
     "verified_purchase": pl.Boolean}
)  # fmt: skip
# what reviews need of a sale line (`ShopWriter.sale_lines`)
LINE_COLUMNS = ("sale_id", "order_id", "sold_at", "customer_id", "product_id")

# titles by rating (1..5), and a body's two sentences: one by rating, one about the garment by sentiment
TITLES = (
    ("Terrible", "Fell apart", "Waste of money", "Returned it", "Do not buy"),
    ("Disappointed", "Runs small", "Not as described", "Poor quality"),
    ("It's okay", "Average", "Decent for the price", "Not bad", "Mixed feelings"),
    ("Very nice", "Good value", "Happy with it", "Nice fabric", "Fits well"),
    ("Love it", "Perfect fit", "Excellent quality", "Exactly as pictured", "Highly recommend", "Great buy"),
)
OPENINGS = (
    ("The seams came apart after one wash.", "Nothing like the photos.", "I sent it straight back."),
    ("The size chart is off.", "The colour faded quickly.", "Thinner than I expected."),
    ("Does the job.", "Fine for everyday wear.", "Some things I like, some I don't."),
    ("Good quality for the money.", "Comfortable and well made.", "I would buy it again."),
    ("Absolutely love it.", "Fits like a glove.", "Best purchase this season.", "Gorgeous colour."),
)
REMARKS = {
    "negative": ("The fabric feels cheap.", "Customer service was slow.", "Would not recommend."),
    "neutral": ("Delivery took a while.", "Order a size up.", "Washes fine."),
    "positive": ("Delivery was quick.", "True to size.", "Soft fabric.", "Got many compliments."),
}
SENTIMENT = ("negative", "negative", "neutral", "positive", "positive")  # of ratings 1..5


@dataclass(frozen=True)
class EventRates:
    """The distributions' parameters (module docstring); `browsing_sessions_per_buyer` is the volume knob."""

    browsing_sessions_per_buyer: float = BROWSING_SESSIONS_PER_BUYER
    anonymous_share: float = 0.40
    extra_views_per_buyer: float = 1.5  # Poisson mean of a buyer's views of products not bought
    extra_views_per_browser: float = 1.5  # a browsing session views 1 + Poisson(this)
    cart_rate: float = 0.12  # a browsing session's view added to the cart (then abandoned)
    review_rate: float = REVIEW_RATE

    def __post_init__(self) -> None:
        if not 0 <= self.browsing_sessions_per_buyer <= 1_000:
            raise ValueError(
                f"browsing_sessions_per_buyer must be in 0..1000, got {self.browsing_sessions_per_buyer}"
            )
        for name in ("anonymous_share", "cart_rate", "review_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in 0..1, got {getattr(self, name)}")


class EventSink(Protocol):
    """Where a day's documents go: `LandingEventSink` (`datagen/landing.py`, files in the landing zone) or
    `MemoryEventSink` (`datagen/memory.py`, for tests)."""

    def write(self, kind: str, day: dt.date, documents: pl.DataFrame) -> None:
        """The documents of `kind` (`clickstream` or `reviews`) that `day` emits, whole, replacing any of
        that kind and day written before (a day generated again after a crash writes the same)."""
        ...


def events_rng(seed: int, day: dt.date, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, EVENTS_KEY, day.toordinal(), stream])


def file_path(kind: str, day: dt.date) -> str:
    """The file of `kind` and `day`, relative to the landing URL."""
    return f"incoming/{kind}/{day.isoformat()}/{kind}-{day.isoformat()}.jsonl.gz"


def encode(documents: pl.DataFrame) -> bytes:
    """JSON lines, gzip (mtime 0: the same documents give the same bytes). A field without a value is left
    out rather than written as null, as web trackers do: a checkout carries no product_id, an anonymous
    visitor no customer_id (and the loader's parse is cheaper for documents without nulls)."""
    buffer = io.BytesIO()
    documents.write_ndjson(buffer)
    text = buffer.getvalue()
    # Polars writes every column; a JSON string cannot hold `,"name":null` unescaped, so this removes only
    # null fields (never the first one, which is each document's id and never null)
    for name in documents.columns[1:]:
        if documents[name].null_count():
            text = text.replace(b',"' + name.encode() + b'":null', b"")
    return gzip.compress(text, compresslevel=COMPRESSION_LEVEL, mtime=0)


def _day_start_micros(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * MICROS_PER_DAY


def _within(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., count - 1 for each of `counts`, concatenated."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


def clickstream(
    rng: np.random.Generator,
    day: dt.date,
    lines: pl.DataFrame,
    customers: IdRanges,
    product_ids: np.ndarray,
    product_weights: np.ndarray,
    rates: EventRates = EventRates(),
) -> pl.DataFrame:
    """The clickstream of `day` (CLICKSTREAM_SCHEMA): a session per cheque of `lines` (the day's sale
    lines: order_id, sold_at, customer_id, product_id), browsing sessions of `customers` (the shop's own,
    registered before the day) and of anonymous visitors, products by `product_weights`."""
    lines = lines.select("sale_id", "order_id", "sold_at", "customer_id", "product_id").sort(
        "order_id", "sale_id"
    )
    order_of_line = lines["order_id"].to_numpy()
    first_line = (
        np.flatnonzero(np.r_[True, order_of_line[1:] != order_of_line[:-1]])
        if lines.height
        else np.array([], np.int64)
    )
    line_counts = np.diff(np.r_[first_line, lines.height]).astype(np.int64)
    line_products = lines["product_id"].to_numpy()
    buyers = lines["customer_id"].to_numpy()[first_line]
    sold_at = lines["sold_at"].dt.epoch("us").to_numpy()[first_line]
    orders = order_of_line[first_line]
    day_start = _day_start_micros(day)
    day_end = day_start + MICROS_PER_DAY - 1

    # the buyers' sessions: a few minutes before each purchase, ending at it
    n_buyers = len(orders)
    extra_views = rng.poisson(rates.extra_views_per_buyer, n_buyers)
    lead = MICROS_PER_MINUTE + rng.gamma(2.0, 4 * MICROS_PER_MINUTE, n_buyers).astype(np.int64)
    buyer_start = np.maximum(sold_at - lead, day_start)

    # browsing sessions: registered customers other than the day's buyers, and anonymous visitors
    n_browsing = int(rng.poisson(rates.browsing_sessions_per_buyer * n_buyers))
    anonymous = rng.random(n_browsing) < rates.anonymous_share
    visitors = (
        customers.ids(rng.integers(0, len(customers), n_browsing))
        if len(customers)
        else np.zeros(n_browsing, np.int64)
    )
    bought_today = np.zeros(int(max(customers.last, buyers.max(initial=0))) + 1, bool)
    bought_today[buyers] = True
    keep = anonymous | (~bought_today[visitors] if len(customers) else False)
    anonymous, visitors = anonymous[keep], np.where(anonymous, -1, visitors)[keep]
    n_browsing = len(visitors)
    views = 1 + rng.poisson(rates.extra_views_per_browser, n_browsing)
    browse_start = day_start + purchase_times(rng, n_browsing)
    length = 30_000_000 + rng.gamma(views, MICROS_PER_MINUTE).astype(np.int64)
    browse_end = np.minimum(browse_start + length, day_end)

    # every session, buyers' first, then in order of their start
    n_sessions = n_buyers + n_browsing
    device = rng.choice(len(DEVICES), n_sessions, p=DEVICE_P).astype(np.int8)
    referrer = rng.choice(len(REFERRERS), n_sessions, p=REFERRER_P).astype(np.int8)
    start = np.r_[buyer_start, browse_start].astype(np.int64)
    end = np.r_[sold_at, browse_end].astype(np.int64)
    by_start = np.argsort(start, kind="stable")
    start, end, device, referrer = start[by_start], end[by_start], device[by_start], referrer[by_start]
    is_buyer = by_start < n_buyers
    buyer_index = np.where(is_buyer, by_start, 0)
    customer = np.r_[buyers, visitors][by_start]
    free = np.r_[extra_views, views][by_start]  # views of products chosen by popularity
    bought = np.where(is_buyer, line_counts[buyer_index] if n_buyers else 0, 0)
    line_start = np.where(is_buyer, first_line[buyer_index] if n_buyers else 0, 0)

    # steps: a session's free views, then its lines (a buyer's); a step is a view, maybe followed by a cart
    steps = free + bought
    step_session = np.repeat(np.arange(n_sessions), steps)
    step = _within(steps)
    free_of_step = np.repeat(free, steps)
    is_free = step < free_of_step
    n_free = int(is_free.sum())
    step_product = np.empty(len(step), np.int64)
    step_product[is_free] = rng.choice(product_ids, size=n_free, p=product_weights) if n_free else []
    line_of_step = np.repeat(line_start, steps) + step - free_of_step
    step_product[~is_free] = line_products[line_of_step[~is_free]]
    carted = ~is_free
    carted[is_free] = (rng.random(n_free) < rates.cart_rate) & ~is_buyer[step_session[is_free]]

    # events: session_start, each step's view (and cart), a buyer's checkout
    carts = np.bincount(step_session, weights=carted, minlength=n_sessions).astype(np.int64)
    count = 1 + steps + carts + is_buyer
    offset = np.cumsum(count) - count
    n_events = int(count.sum())
    carts_before = np.cumsum(carted) - carted
    carts_before = (
        carts_before - np.repeat(carts_before[np.cumsum(steps) - steps], steps) if len(step) else carts_before
    )
    view_at = np.repeat(offset, steps) + 1 + step + carts_before
    cart_at = view_at[carted] + 1
    checkout_at = (offset + count - 1)[is_buyer]
    event_type = np.full(n_events, SESSION_START, np.int8)
    event_type[view_at], event_type[cart_at], event_type[checkout_at] = PRODUCT_VIEW, ADD_TO_CART, CHECKOUT
    product = np.zeros(n_events, np.int64)
    product[view_at], product[cart_at] = step_product, step_product[carted]
    session = np.repeat(np.arange(n_sessions, dtype=np.int32), count)

    # moments: exponential gaps from the session's start to its end (a buyer's checkout: its sold_at)
    gaps = rng.standard_exponential(n_events)
    gaps[offset] = 0.0
    elapsed = np.cumsum(gaps)
    base, last = elapsed[offset], elapsed[offset + count - 1]
    scale = (end - start) / np.where(last > base, last - base, 1.0)
    moment = start[session] + np.floor((elapsed - base[session]) * scale[session]).astype(np.int64)
    moment[checkout_at] = end[is_buyer]

    ordinal = int(day.strftime("%Y%m%d"))
    order_of_event = np.zeros(n_events, np.int64)
    order_of_event[checkout_at] = orders[buyer_index[is_buyer]]
    # one select: Polars builds the columns side by side
    raw = pl.DataFrame(
        {
            "type": event_type,
            "moment": moment,
            "session": session,
            "customer": customer[session],
            "product": product,
            "order": order_of_event,
            "device": device[session],
            "referrer": referrer[session],
        }
    )
    opening, kind = pl.col("type") == SESSION_START, pl.col("type")
    return raw.select(
        (pl.int_range(1, n_events + 1, dtype=pl.Int64) + ordinal * 10**9).cast(pl.String).alias("event_id"),
        pl.lit(pl.Series(EVENT_TYPES, dtype=pl.String)).gather(kind).alias("event_type"),
        pl.col("moment").cast(pl.Datetime("us")).dt.to_string(TIMESTAMP_FORMAT).alias("occurred_at"),
        (pl.col("session").cast(pl.Int64) + (ordinal * 10**8 + 1)).cast(pl.String).alias("session_id"),
        pl.when(pl.col("customer") >= 0).then("customer").alias("customer_id"),
        pl.when((kind == PRODUCT_VIEW) | (kind == ADD_TO_CART)).then("product").alias("product_id"),
        pl.when(kind == CHECKOUT).then("order").alias("order_id"),
        pl.when(opening).then(pl.lit(pl.Series(DEVICES, dtype=pl.String)).gather("device")).alias("device"),
        pl.when(opening)
        .then(pl.lit(pl.Series(REFERRERS, dtype=pl.String)).gather("referrer"))
        .alias("referrer"),
    )


def review_plan(
    seed: int, purchase_day: dt.date, lines: int, rates: EventRates = EventRates()
) -> pl.DataFrame:
    """Which of the `lines` sale lines of `purchase_day` (positions 0.. in sale_id order) are reviewed, on
    which day, when and how: drawn from the purchase day's own generator, the same whenever drawn."""
    rng = events_rng(seed, purchase_day, REVIEWS_STREAM)
    position = np.flatnonzero(rng.random(lines) < rates.review_rate)
    count = len(position)
    delay = rng.choice(REVIEW_DELAYS, count, p=REVIEW_DELAY_P)
    moment = purchase_times(rng, count)
    rating = rng.choice(5, count, p=RATING_P)  # 0..4: ratings 1..5
    words = rng.integers(0, 2**31, (3, count))
    title, opening, remark = (
        _pick(pools, rating, choice)
        for pools, choice in (
            (TITLES, words[0]),
            (OPENINGS, words[1]),
            ([REMARKS[SENTIMENT[r]] for r in range(5)], words[2]),
        )
    )
    start = np.datetime64(purchase_day, "us")
    return pl.DataFrame(
        {
            "position": position,
            "review_day": (np.datetime64(purchase_day, "D") + delay).astype("datetime64[D]"),
            "created_at": start + (delay * MICROS_PER_DAY + moment).astype("timedelta64[us]"),
            "rating": (rating + 1).astype(np.int64),
            "title": title,
            "body": np.char.add(np.char.add(opening, " "), remark) if count else np.array([], str),
        }
    ).with_columns(
        pl.col("review_day").cast(pl.Date), pl.col("title").cast(pl.String), pl.col("body").cast(pl.String)
    )


def _pick(pools, rating: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """A word of the pool of each rating: pools[rating][choice mod its size], vectorised."""
    flat = np.array([word for pool in pools for word in pool], dtype=object)
    sizes = np.array([len(pool) for pool in pools])
    return flat[(np.cumsum(sizes) - sizes)[rating] + choice % sizes[rating]].astype(str)


def due_reviews(
    seed: int,
    day: dt.date,
    lines_per_day: dict[dt.date, int],
    sale_ids: IdRanges,
    rates: EventRates = EventRates(),
) -> pl.DataFrame:
    """The reviews created on `day`, of lines bought on the days before it: sale_id, purchase_day,
    created_at, rating, title, body. `lines_per_day`: the sale lines of each simulated day before `day`
    (at least those of its REVIEW_WINDOW days before); `sale_ids`: the shop's own lines, whose last ones are
    those days' lines in order (a day's lines are the next run of its own sale ids)."""
    plans, end = [], len(sale_ids)
    for purchase_day in sorted((d for d in lines_per_day if d < day), reverse=True):
        gap = (day - purchase_day).days
        if gap > REVIEW_WINDOW:
            break
        count = lines_per_day[purchase_day]
        first, end = end - count, end - count
        if gap < REVIEW_DELAYS.min() or not count or first < 0:
            continue
        plan = review_plan(seed, purchase_day, count, rates).filter(pl.col("review_day") == day)
        plans.append(
            plan.select(
                pl.Series("sale_id", sale_ids.ids(first + plan["position"].to_numpy()), dtype=pl.Int64),
                pl.lit(purchase_day).alias("purchase_day"),
                "created_at",
                "rating",
                "title",
                "body",
            )  # fmt: skip
        )
    if not plans:
        return pl.DataFrame(
            schema={"sale_id": pl.Int64, "purchase_day": pl.Date, "created_at": pl.Datetime("us"),
                    "rating": pl.Int64, "title": pl.String, "body": pl.String}
        )  # fmt: skip
    return pl.concat(plans).sort("sale_id")


def reviews(due: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame:
    """The review documents (REVIEW_SCHEMA) of `due` (`due_reviews`) for the sale lines `lines` holds
    (LINE_COLUMNS): a line no longer there, or moved to another day, is not reviewed."""
    joined = due.join(lines.select(LINE_COLUMNS), on="sale_id", how="inner").filter(
        pl.col("sold_at").dt.date() == pl.col("purchase_day")
    )
    return joined.sort("created_at", "sale_id").select(
        pl.concat_str(pl.lit("r-"), pl.col("sale_id").cast(pl.String)).alias("review_id"),
        pl.col("order_id").cast(pl.Int64),
        pl.col("customer_id").cast(pl.Int64),
        pl.col("product_id").cast(pl.Int64),
        "rating",
        "title",
        "body",
        pl.col("created_at").dt.to_string(TIMESTAMP_FORMAT),
        pl.lit(True).alias("verified_purchase"),
    )
