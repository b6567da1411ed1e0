"""The clothing catalogue: each product is one model in one size.

Distributions:
- a model belongs to a category (table CATEGORIES, with that category's garments, sizes and price range);
  each category has 20-40 models, each model is sold in every size of its category;
- a model's name is "<brand> <colour> <garment>", brand and colour from mimesis pools;
- a model's price is log-uniform over its category's range, ending in .99; all sizes of a model cost the same;
- popularity (used by purchases) follows a Zipf-like law over models (weight 1 / rank^0.8), and the middle
  sizes (M, L, 32, 40...) sell more than the extremes.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from datagen.vocabulary import Vocabulary

LETTER_SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
WAIST_SIZES = ["28", "30", "32", "34", "36", "38"]
SHOE_SIZES = ["36", "37", "38", "39", "40", "41", "42", "43", "44", "45"]
ONE_SIZE = ["One size"]

# category: (garments, sizes, lowest price, highest price)
CATEGORIES: dict[str, tuple[list[str], list[str], float, float]] = {
    "T-shirts": (["T-shirt", "Crew tee", "V-neck tee", "Polo"], LETTER_SIZES, 9, 45),
    "Shirts": (["Oxford shirt", "Linen shirt", "Flannel shirt", "Denim shirt"], LETTER_SIZES, 25, 90),
    "Jeans": (["Slim jeans", "Straight jeans", "Relaxed jeans", "Bootcut jeans"], WAIST_SIZES, 35, 140),
    "Trousers": (["Chinos", "Cargo trousers", "Wool trousers", "Joggers"], WAIST_SIZES, 30, 120),
    "Dresses": (["Midi dress", "Wrap dress", "Maxi dress", "Shirt dress"], LETTER_SIZES, 35, 180),
    "Skirts": (["Pleated skirt", "Pencil skirt", "Denim skirt"], LETTER_SIZES, 25, 95),
    "Sweaters": (["Crewneck sweater", "Cardigan", "Hoodie", "Turtleneck"], LETTER_SIZES, 30, 150),
    "Jackets": (["Denim jacket", "Bomber jacket", "Blazer", "Rain jacket"], LETTER_SIZES, 60, 260),
    "Coats": (["Wool coat", "Parka", "Trench coat", "Puffer coat"], LETTER_SIZES, 90, 420),
    "Shoes": (["Sneakers", "Loafers", "Ankle boots", "Sandals"], SHOE_SIZES, 40, 220),
    "Underwear": (["Boxers", "Briefs", "Socks 3-pack", "Bralette"], LETTER_SIZES, 5, 35),
    "Accessories": (["Beanie", "Scarf", "Leather belt", "Cap", "Tote bag"], ONE_SIZE, 8, 80),
}


def catalogue(
    rng: np.random.Generator, vocab: Vocabulary, listed_at: dt.datetime, first_id: int = 1
) -> pl.DataFrame:
    """Every product of the shop, with ids from `first_id` and `updated_at` = `listed_at`."""
    models = []
    names: set[str] = set()
    for category, (garments, sizes, low, high) in CATEGORIES.items():
        for _ in range(int(rng.integers(20, 41))):
            name = ""
            while not name or name in names:  # a model name is unique in the shop
                garment = garments[int(rng.integers(len(garments)))]
                name = f"{rng.choice(vocab.brands)} {rng.choice(vocab.colours)} {garment}"
            names.add(name)
            price = np.floor(np.exp(rng.uniform(np.log(low), np.log(high)))) + 0.99
            models.extend((name, category, size, round(float(price), 2)) for size in sizes)
    frame = pl.DataFrame(models, schema=["name", "category", "size", "price"], orient="row")
    return frame.with_columns(
        pl.int_range(first_id, first_id + frame.height, dtype=pl.Int64).alias("product_id"),
        pl.col("price").cast(pl.Decimal(12, 2)),
        pl.lit(listed_at).cast(pl.Datetime("us")).alias("updated_at"),
    ).select("product_id", "name", "category", "size", "price", "updated_at")


def popularity(products: pl.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Purchase probability of each product (same order as `products`): Zipf over models times a bell
    over sizes."""
    model_rank = products["name"].rank("dense").to_numpy().astype(np.int64)
    shuffled = rng.permutation(model_rank.max()) + 1  # which model is most popular is random per shop
    model_weight = 1.0 / shuffled[model_rank - 1] ** 0.8
    size_position = (
        products.with_columns(
            (pl.col("product_id").rank("ordinal").over("name") - 1).alias("position"),
            pl.len().over("name").alias("sizes"),
        )
        .select(((pl.col("position") + 0.5) / pl.col("sizes") - 0.5).abs().alias("distance"))["distance"]
        .to_numpy()
    )
    size_weight = np.exp(-((size_position / 0.3) ** 2))
    weights = model_weight * size_weight
    return weights / weights.sum()
