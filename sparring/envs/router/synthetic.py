"""The shipped synthetic QA set: questions whose right answer is known by construction, in
domains where the scripted experts differ in skill (so routing has a right answer on a CPU).

Rows are FlashRAG-shaped (``question``, ``golden_answers``) plus ``domain``. The shipped
files (``data/train.jsonl``, ``data/heldout.jsonl``) are :func:`build` 's output;
``python -m sparring.envs.router.synthetic`` writes them again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
DOMAINS = ("arithmetic", "capitals", "elements", "spelling")

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Egypt": "Cairo", "Kenya": "Nairobi",
    "Canada": "Ottawa", "Mexico": "Mexico City", "Brazil": "Brasilia", "Argentina": "Buenos Aires",
    "Peru": "Lima", "Chile": "Santiago", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Poland": "Warsaw", "Austria": "Vienna", "Greece": "Athens", "Turkey": "Ankara",
    "Russia": "Moscow", "Ireland": "Dublin", "Hungary": "Budapest", "Thailand": "Bangkok",
    "Vietnam": "Hanoi", "Indonesia": "Jakarta", "Australia": "Canberra", "New Zealand": "Wellington",
    "South Korea": "Seoul", "Iran": "Tehran", "Iraq": "Baghdad", "Cuba": "Havana", "Morocco": "Rabat",
    "Nigeria": "Abuja", "Ghana": "Accra", "Ethiopia": "Addis Ababa",
}
ELEMENTS = {
    "hydrogen": "H", "helium": "He", "lithium": "Li", "carbon": "C", "nitrogen": "N", "oxygen": "O",
    "fluorine": "F", "neon": "Ne", "sodium": "Na", "magnesium": "Mg", "aluminium": "Al", "silicon": "Si",
    "phosphorus": "P", "sulfur": "S", "chlorine": "Cl", "argon": "Ar", "potassium": "K", "calcium": "Ca",
    "iron": "Fe", "copper": "Cu", "zinc": "Zn", "silver": "Ag", "tin": "Sn", "iodine": "I", "gold": "Au",
    "mercury": "Hg", "lead": "Pb", "uranium": "U", "nickel": "Ni", "cobalt": "Co", "platinum": "Pt",
    "tungsten": "W",
}
WORDS = ("apple", "river", "garden", "planet", "candle", "window", "silver", "rocket", "forest", "pencil",
         "bridge", "castle", "dragon", "mirror", "orange", "puzzle", "saddle", "tunnel", "violin", "wallet",
         "anchor", "basket", "cotton", "dinner", "engine", "falcon", "ginger", "hammer", "island", "jacket")


def _rows(rng: np.random.Generator) -> list[dict]:
    rows = []
    for _ in range(60):
        a, b = (int(x) for x in rng.integers(10, 100, size=2))
        rows.append({"question": f"What is {a} plus {b}?", "golden_answers": [str(a + b)], "domain": "arithmetic"})
    for country, capital in CAPITALS.items():
        rows.append({"question": f"What is the capital of {country}?", "golden_answers": [capital],
                     "domain": "capitals"})
    for element, symbol in ELEMENTS.items():
        rows.append({"question": f"What is the chemical symbol of {element}?", "golden_answers": [symbol],
                     "domain": "elements"})
    for word in WORDS:
        rows.append({"question": f"How is the word {word} spelled backwards?", "golden_answers": [word[::-1]],
                     "domain": "spelling"})
    return rows


def build(seed: int = 0, heldout_fraction: float = 0.25) -> dict[str, list[dict]]:
    """The ``train`` and ``heldout`` splits (each domain split alike, by a seeded shuffle)."""
    rng = np.random.default_rng(seed)
    rows = _rows(rng)
    splits: dict[str, list[dict]] = {"train": [], "heldout": []}
    for domain in DOMAINS:
        mine = [r for r in rows if r["domain"] == domain]
        order = rng.permutation(len(mine))
        cut = int(round(len(mine) * heldout_fraction))
        splits["heldout"] += [mine[i] for i in order[:cut]]
        splits["train"] += [mine[i] for i in order[cut:]]
    return splits


def write(directory: Path = DATA_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in build().items():
        (directory / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    write()
