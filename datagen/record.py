"""The generator's own record of the shop: what it was made with (seed, initial customers), which customer,
product and sale-line ids are its own, and the ids after which it hands out new ones.

Why a record of its own: RAW is written by others too (the landing zone's ingest, people at a psql
prompt). Sized by RAW's `max(customer_id)`, one outside customer with id 99,000,003 made the next day
2,171,336 sale lines for customers that do not exist. With the record, purchases and changes draw only from
the generator's own customers and catalogue, and a new id comes after both the generator's last one and
RAW's greatest, so it never collides with an id an outside writer used. It lives in `raw.generator_shop`
(datagen/raw.sql) and is written in the same transaction as each day.

Own ids are kept as runs (`IdRanges`): one run per batch the generator wrote, merged when batches follow
each other, so a shop nobody else writes to has the single run 1..N, and sampling "the k-th customer"
maps k to k + 1 exactly as before the record existed (the same seed still gives the same rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


def _int64(values: object) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


@dataclass(frozen=True, eq=False)
class IdRanges:
    """A set of ids as sorted, disjoint, half-open runs [lower, upper): PostgreSQL's int8multirange."""

    lowers: np.ndarray = field(default_factory=lambda: _int64([]))
    uppers: np.ndarray = field(default_factory=lambda: _int64([]))

    def __post_init__(self) -> None:
        lowers, uppers = _int64(self.lowers), _int64(self.uppers)
        if len(lowers) != len(uppers) or np.any(uppers <= lowers) or np.any(lowers[1:] < uppers[:-1]):
            raise ValueError(f"not sorted, disjoint, non-empty runs: {list(zip(lowers, uppers))}")
        object.__setattr__(self, "lowers", lowers)
        object.__setattr__(self, "uppers", uppers)

    @classmethod
    def run(cls, first: int, count: int) -> IdRanges:
        """The ids first, first + 1, ..., first + count - 1."""
        return cls([first], [first + count]) if count else cls()

    def __len__(self) -> int:
        return int((self.uppers - self.lowers).sum())

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, IdRanges)
            and np.array_equal(self.lowers, other.lowers)
            and np.array_equal(self.uppers, other.uppers)
        )

    @property
    def last(self) -> int:
        """The greatest id, 0 when empty."""
        return int(self.uppers[-1]) - 1 if len(self.uppers) else 0

    def added(self, first: int, count: int) -> IdRanges:
        """These ids and first..first + count - 1, which must lie past the last one; a run that continues
        the last run extends it."""
        if not count:
            return self
        if first <= self.last:
            raise ValueError(f"new ids from {first} do not follow the last id {self.last}")
        if len(self.uppers) and first == self.uppers[-1]:
            return IdRanges(self.lowers, np.append(self.uppers[:-1], first + count))
        return IdRanges(np.append(self.lowers, first), np.append(self.uppers, first + count))

    def ids(self, positions: np.ndarray) -> np.ndarray:
        """The ids at 0-based `positions` in id order, vectorised: position k of the single run 1..N is
        id k + 1. Increasing positions give increasing ids."""
        positions = _int64(positions)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"positions outside 0..{len(self) - 1}")
        sizes = self.uppers - self.lowers
        ends = np.cumsum(sizes)  # the position just past each run
        run = np.searchsorted(ends, positions, side="right")
        return self.lowers[run] + positions - (ends[run] - sizes[run]) if positions.size else positions

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """A boolean per id: is it in the set."""
        ids = _int64(ids)
        run = np.searchsorted(self.lowers, ids, side="right") - 1
        inside = run >= 0
        return inside & (ids < self.uppers[np.maximum(run, 0)]) if len(self.uppers) else inside


@dataclass(frozen=True)
class ShopRecord:
    """What the generator made. `last_*_id`: new ids of that kind start after it; it is the greatest id
    the generator handed out or found in RAW when it last wrote a day, so an id is never handed out twice,
    even when RAW loses the row that held it."""

    seed: int
    initial_customers: int
    customer_ids: IdRanges = field(default_factory=IdRanges)
    product_ids: IdRanges = field(default_factory=IdRanges)
    sale_ids: IdRanges = field(default_factory=IdRanges)  # the lines it sold: the only ones it corrects
    last_customer_id: int = 0
    last_order_id: int = 0
    last_sale_id: int = 0
    derived_from_raw: bool = False  # made from a RAW written by a generator that kept no record

    @property
    def customers(self) -> int:
        return len(self.customer_ids)

    def with_customers(self, first: int, count: int) -> ShopRecord:
        return replace(
            self,
            customer_ids=self.customer_ids.added(first, count),
            last_customer_id=max(self.last_customer_id, first + count - 1),
        )
