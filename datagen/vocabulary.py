"""Word pools from mimesis, drawn once per seed and then sampled in bulk with numpy (mimesis is called a few
thousand times per run, never once per row)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mimesis import Finance, Locale, Person, Text
from mimesis.enums import Gender

POOL_SIZE = 4000


@dataclass(frozen=True)
class Vocabulary:
    first_names: np.ndarray
    last_names: np.ndarray
    brands: np.ndarray
    colours: np.ndarray


def vocabulary(seed: int) -> Vocabulary:
    person = Person(Locale.EN, seed=seed)
    finance = Finance(seed=seed)
    text = Text(Locale.EN, seed=seed)
    first = [person.first_name(gender=Gender.FEMALE if i % 2 else Gender.MALE) for i in range(POOL_SIZE)]
    last = [person.last_name() for _ in range(POOL_SIZE)]
    # a brand is the first word of a company name: "Cisco", "Asbury", ...
    brands = sorted({finance.company().split()[0].strip(",.") for _ in range(400)})
    colours = sorted({text.color() for _ in range(400)})
    return Vocabulary(np.array(first), np.array(last), np.array(brands), np.array(colours))
