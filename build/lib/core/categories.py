"""The 27 Rakuten product type codes and their names: the one mapping every layer uses.

Rakuten never published class names; these are the community consensus. `share` is the class share in
the real training set (84,916 rows), which the demo generator reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Category:
    code: int
    name_fr: str
    name_en: str
    share: float

    @property
    def label(self) -> str:
        """Short display label, e.g. `2583 · Swimming pool and spa equipment`."""
        return f"{self.code} · {self.name_en}"


CATEGORIES: Final[tuple[Category, ...]] = (
    Category(
        10,
        "Livres d'occasion (souvent anciens / en langue étrangère)",
        "Used books (often old / foreign-language)",
        0.0367,
    ),
    Category(
        40, "Jeux vidéo (neufs, import) et accessoires", "Video games (new / import) and accessories", 0.0295
    ),
    Category(50, "Accessoires de jeux vidéo (manettes, protections…)", "Video-game accessories", 0.0198),
    Category(
        60, "Consoles de jeux (dont rétro / portables)", "Game consoles (incl. retro / handheld)", 0.0098
    ),
    Category(
        1140, "Figurines pop culture (Funko, Star Wars, Marvel…)", "Pop-culture collectible figurines", 0.0315
    ),
    Category(1160, "Cartes à collectionner (Pokémon, Magic, Yu-Gi-Oh…)", "Trading cards", 0.0466),
    Category(
        1180,
        "Figurines de jeux / wargames (Warhammer) et jeux de plateau",
        "Tabletop / wargame miniatures",
        0.009,
    ),
    Category(1280, "Jouets pour enfants (peluches, jouets, déguisements)", "Children's toys", 0.0574),
    Category(1281, "Jeux de société et jeux pour enfants", "Board games / kids' games", 0.0244),
    Category(
        1300, "Modélisme, drones et véhicules radiocommandés", "RC models, drones and model kits", 0.0594
    ),
    Category(
        1301,
        "Chaussettes bébé/enfant et jeux de bar (billard, fléchettes)",
        "Baby/kids socks and bar games (mixed class)",
        0.0095,
    ),
    Category(1302, "Jeux et loisirs d'extérieur, gadgets enfants", "Outdoor play, leisure gadgets", 0.0293),
    Category(1320, "Puériculture et accessoires bébé", "Baby care and baby gear", 0.0382),
    Category(
        1560,
        "Mobilier d'intérieur et articles de maison (literie, rangement)",
        "Indoor furniture and household items",
        0.0597,
    ),
    Category(
        1920,
        "Linge de maison (coussins, taies, plaids)",
        "Home textiles (cushions, pillow cases, throws)",
        0.0507,
    ),
    Category(1940, "Épicerie / alimentation", "Food and groceries", 0.0095),
    Category(2060, "Décoration intérieure (Noël, luminaires, stickers)", "Home decoration", 0.0588),
    Category(2220, "Animalerie (accessoires pour animaux)", "Pet supplies", 0.0097),
    Category(2280, "Journaux, revues et magazines anciens", "Old newspapers and magazines", 0.0561),
    Category(
        2403, "Livres, BD, magazines en lots, partitions", "Books, comics, magazine lots, sheet music", 0.0562
    ),
    Category(
        2462, "Jeux vidéo d'occasion et lots consoles + jeux", "Used video games and console bundles", 0.0167
    ),
    Category(2522, "Papeterie et fournitures de bureau", "Stationery and office supplies", 0.0588),
    Category(2582, "Mobilier et accessoires de jardin", "Garden furniture and accessories", 0.0305),
    Category(2583, "Piscine et spa (équipement, entretien)", "Swimming pool and spa equipment", 0.1202),
    Category(2585, "Outillage, bricolage et jardinage", "Tools, DIY and gardening", 0.0294),
    Category(2705, "Livres neufs", "New books", 0.0325),
    Category(2905, "Jeux PC en téléchargement", "PC games (digital download)", 0.0103),
)

CODES: Final[tuple[int, ...]] = tuple(c.code for c in CATEGORIES)
_BY_CODE: Final[dict[int, Category]] = {c.code: c for c in CATEGORIES}


def category(code: int) -> Category:
    """The category for a product type code; `KeyError` with the known codes if unknown."""
    try:
        return _BY_CODE[int(code)]
    except KeyError:
        raise KeyError(f"unknown product type code {code!r}; known codes: {list(CODES)}") from None


def is_known(code: object) -> bool:
    """True if `code` is one of the 27 product type codes."""
    try:
        return int(code) in _BY_CODE  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def label(code: int) -> str:
    """Display label for a code; unknown codes are shown as-is rather than raising."""
    cat = _BY_CODE.get(int(code))
    return cat.label if cat else f"{code} · unknown"


def names(lang: str = "en") -> dict[int, str]:
    """Code → name in `en` or `fr`."""
    return {c.code: (c.name_fr if lang == "fr" else c.name_en) for c in CATEGORIES}
