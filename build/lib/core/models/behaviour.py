"""Behavioural checks of a trained classifier (the CheckList idea): hand-written products it must get
right, noise it must ignore, and words that must move its answer. Run by the promotion gate and the tests.

Products are written the way sellers write them on Rakuten France, so the same suite applies to a
model trained on the real download and on the demo data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
import pandas as pd

# (designation, description, expected code)
FUNCTIONALITY: Final[tuple[tuple[str, str, int], ...]] = (
    ("Piscine tubulaire Intex 366 x 122 cm avec pompe de filtration", "Piscine hors sol ronde.", 2583),
    ("Spa gonflable Lay-Z-Spa 4 places", "Jacuzzi gonflable avec chauffage et bulles.", 2583),
    ("Perceuse-visseuse sans fil Bosch 18V", "Livrée avec 2 batteries et coffret.", 2585),
    ("Salon de jardin résine tressée table + 4 fauteuils", "Mobilier de jardin pour terrasse.", 2582),
    ("Manette sans fil pour PS4 noire", "Manette compatible PlayStation 4, câble de charge inclus.", 50),
    ("Console Nintendo Switch 32 Go", "Console de jeux portable avec Joy-Con.", 60),
    ("Figurine Funko Pop Marvel Spider-Man", "Figurine de collection en vinyle, boîte d'origine.", 1140),
    ("Carte Pokémon Dracaufeu holographique", "Carte Pokémon rare en très bon état.", 1160),
    ("Jeu de société Monopoly édition classique", "Jeu de plateau pour toute la famille.", 1281),
    ("Drone avec caméra HD quadricoptère", "Drone radiocommandé, autonomie 20 minutes.", 1300),
    ("Poussette canne légère pliable", "Poussette pour bébé dès 6 mois.", 1320),
    ("Commode 3 tiroirs en bois blanc", "Meuble de rangement pour chambre.", 1560),
    ("Housse de coussin 45 x 45 cm en lin", "Coussin décoratif pour canapé.", 1920),
    ("Café en grains Lavazza 1 kg", "Café torréfié 100% arabica.", 1940),
    ("Guirlande lumineuse LED 10 m", "Décoration de Noël pour le sapin.", 2060),
    ("Arbre à chat avec griffoir et niche", "Griffoir en sisal pour chat.", 2220),
    ("Cahier Clairefontaine grand format 96 pages", "Cahier à grands carreaux pour l'école.", 2522),
    ("Lot de 10 bandes dessinées Astérix", "Lot de BD en bon état.", 2403),
    ("Peluche ours doudou 30 cm", "Peluche toute douce pour enfant.", 1280),
    ("Trampoline de jardin 305 cm avec filet", "Trampoline extérieur pour enfants.", 1302),
)

# (neutral designation, words that must pull the answer towards `code`, code)
DIRECTION: Final[tuple[tuple[str, str, int], ...]] = (
    ("Article neuf livraison rapide", "piscine tubulaire hors sol", 2583),
    ("Article neuf livraison rapide", "perceuse visseuse sans fil", 2585),
    ("Article neuf livraison rapide", "console de jeux portable", 60),
    ("Article neuf livraison rapide", "housse de coussin", 1920),
    ("Article neuf livraison rapide", "collier pour chien", 2220),
    ("Article neuf livraison rapide", "figurine Funko Pop", 1140),
)


def _noisy(title: str, description: str) -> list[tuple[str, str]]:
    """Copies of a product with formatting noise a seller's HTML export adds."""
    return [
        (title.upper(), description),
        (title, f"<p><b>{description}</b><br/></p>"),
        (title.replace("é", "&eacute;").replace("è", "&egrave;"), description),
        (f"  {title}   ", f"{description}\n\n"),
    ]


class _Classifier(Protocol):
    @property
    def classes(self) -> np.ndarray: ...

    def text_proba(self, products: pd.DataFrame, *, workers: int = 1) -> np.ndarray: ...


@dataclass(frozen=True)
class SuiteResult:
    name: str
    passed: int
    total: int
    failures: list[str] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 1.0


@dataclass(frozen=True)
class BehaviourReport:
    suites: list[SuiteResult]

    @property
    def pass_rate(self) -> float:
        """The weakest suite's pass rate: every kind of behaviour must hold."""
        return min(s.pass_rate for s in self.suites)

    def to_dict(self) -> dict[str, object]:
        return {
            "pass_rate": self.pass_rate,
            "suites": [
                {"name": s.name, "passed": s.passed, "total": s.total, "failures": s.failures}
                for s in self.suites
            ],
        }


def _frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["designation", "description"])


def run_behaviour(model: _Classifier) -> BehaviourReport:
    """Minimum functionality, invariance to formatting noise, and direction checks (text only, so an
    image never excuses a text mistake)."""
    classes = model.classes
    base = _frame([(t, d) for t, d, _ in FUNCTIONALITY])
    pred = classes[model.text_proba(base).argmax(1)]
    mft_fail = [
        f"{t!r}: expected {code}, got {int(p)}"
        for (t, _, code), p in zip(FUNCTIONALITY, pred, strict=True)
        if int(p) != code
    ]

    noisy_rows, owners = [], []
    for i, (t, d, _) in enumerate(FUNCTIONALITY):
        for row in _noisy(t, d):
            noisy_rows.append(row)
            owners.append(i)
    noisy_pred = classes[model.text_proba(_frame(noisy_rows)).argmax(1)]
    inv_fail = [
        f"{noisy_rows[j][0]!r}: {int(noisy_pred[j])} instead of {int(pred[i])}"
        for j, i in enumerate(owners)
        if noisy_pred[j] != pred[i]
    ]

    before = model.text_proba(_frame([(t, "") for t, _, _ in DIRECTION]))
    after = model.text_proba(_frame([(f"{t} {words}", "") for t, words, _ in DIRECTION]))
    dir_fail = []
    for i, (_, words, code) in enumerate(DIRECTION):
        col = int(np.searchsorted(classes, code))
        if col >= len(classes) or classes[col] != code or after[i, col] <= before[i, col]:
            dir_fail.append(f"adding {words!r} did not raise the probability of {code}")

    return BehaviourReport(
        [
            SuiteResult(
                "minimum functionality", len(FUNCTIONALITY) - len(mft_fail), len(FUNCTIONALITY), mft_fail
            ),
            SuiteResult("invariance", len(noisy_rows) - len(inv_fail), len(noisy_rows), inv_fail),
            SuiteResult("direction", len(DIRECTION) - len(dir_fail), len(DIRECTION), dir_fail),
        ]
    )
