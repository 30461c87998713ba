"""The vehicle makes Volteras can connect, how people spell them, and which
make a VIN belongs to.

`MAKES` is the contract's `MakeEnum` (openapi.json), spelled exactly as the
API wants it. Everything a person types or a VIN says is mapped onto it here,
so no other module compares make strings.
"""

from __future__ import annotations

import functools
import re
import unicodedata

MAKES: tuple[str, ...] = (
    "ABARTH",
    "ALFA ROMEO",
    "AUDI",
    "BMW",
    "CHRYSLER",
    "CITROEN",
    "CUPRA",
    "DODGE",
    "DS AUTOMOBILES",
    "FIAT",
    "FORD",
    "HYUNDAI",
    "JEEP",
    "KIA",
    "LANCIA",
    "LEXUS",
    "MASERATI",
    "MERCEDES BENZ",
    "MINI",
    "NISSAN",
    "OPEL",
    "PEUGEOT",
    "POLESTAR",
    "RAM",
    "RENAULT",
    "SEAT",
    "SKODA",
    "TESLA",
    "TOYOTA",
    "VAUXHALL",
    "VOLKSWAGEN",
    "VOLVO",
)

# Makes whose consent flow and data live in one region: the portal must say which.
MAKES_NEEDING_REGION: frozenset[str] = frozenset({"BMW", "MINI"})
# Volteras connects these makes in Europe only.
EUROPE_ONLY_MAKES: frozenset[str] = frozenset({"HYUNDAI", "KIA"})

# Spellings beyond the canonical names, written as people type them; they are
# compared after `comparison_key()` strips case, accents and punctuation.
_ALIASES: dict[str, tuple[str, ...]] = {
    "ALFA ROMEO": ("alfa", "alfaromeo", "alfa-romeo"),
    "CITROEN": ("citroën",),
    "DS AUTOMOBILES": ("ds", "ds automobile", "ds auto"),
    "MERCEDES BENZ": (
        "mercedes",
        "mercedes-benz",
        "merc",
        "mb",
        "benz",
        "daimler",
        "mercedes benz ag",
    ),
    "MINI": ("bmw mini", "mini cooper"),
    "SKODA": ("škoda",),
    "VOLKSWAGEN": ("vw", "volkswagon", "vokswagen", "volkswagen ag"),
    "CUPRA": ("seat cupra",),
    "RAM": ("ram trucks", "dodge ram"),
    "TESLA": ("tesla motors",),
    "VOLVO": ("volvo cars",),
    "TOYOTA": ("toyota motor",),
    "HYUNDAI": ("hyundai motor", "hundai", "hyunday"),
    "KIA": ("kia motors",),
    "PEUGEOT": ("peugot",),
    "RENAULT": ("renault sa",),
    "FORD": ("ford motor", "ford motor company"),
    "NISSAN": ("nissan motor",),
}


def comparison_key(text: str) -> str:
    """Text folded for comparing what people type: lower case, no accents or punctuation."""
    decomposed = unicodedata.normalize("NFKD", text)
    without_accents = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", without_accents.lower())


_BY_KEY: dict[str, str] = {}
for _make in MAKES:
    _BY_KEY[comparison_key(_make)] = _make
for _make, _spellings in _ALIASES.items():
    for _spelling in _spellings:
        _BY_KEY[comparison_key(_spelling)] = _make


@functools.lru_cache(maxsize=512)
def normalise_make(text: str | None) -> str | None:
    """The contract's make for what a person wrote, or None when not a supported make."""
    if not text:
        return None
    return _BY_KEY.get(comparison_key(text))


_LABELS = {
    "BMW": "BMW",
    "CITROEN": "Citroën",
    "DS AUTOMOBILES": "DS Automobiles",
    "MERCEDES BENZ": "Mercedes-Benz",
    "MINI": "MINI",
    "SEAT": "SEAT",
    "SKODA": "Škoda",
}


@functools.lru_cache(maxsize=256)
def make_label(make: str) -> str:
    """How a person writes the contract's make ("MERCEDES BENZ" is "Mercedes-Benz")."""
    return _LABELS.get(make, make.title())


def supported_makes_text() -> str:
    """The supported makes as a readable list for messages."""
    return ", ".join(make_label(make) for make in MAKES)


# World manufacturer identifiers (the VIN's first three characters) of the
# supported makes. A WMI shared by two supported makes (Opel/Vauxhall,
# Fiat/Abarth, SEAT/Cupra, the Chrysler group's US codes) lists them all, and
# then the VIN alone cannot name the make. vininfo's own table is not used for
# inference: it names some WMIs by group (1C4 as Dodge, KMH as Genesis), which
# would make us send a wrong make with confidence.
_WMI: dict[str, tuple[str, ...]] = {}


def _add(makes: tuple[str, ...], *wmis: str) -> None:
    for wmi in wmis:
        _WMI[wmi] = makes


_add(("ABARTH", "FIAT"), "ZFA")
_add(("ALFA ROMEO",), "ZAR")
_add(("AUDI",), "WAU", "WA1", "WUA", "TRU", "WAC")
_add(("BMW",), "WBA", "WBS", "WBY", "WBX", "WBW", "5UX", "5YM", "4US", "5UJ")
_add(("CITROEN",), "VF7", "VR7")
_add(("CUPRA", "SEAT"), "VSS")
_add(("DS AUTOMOBILES",), "VR1")
_add(("FORD",), "WF0", "WF1", "1FA", "1FM", "1FT", "1FD", "1FB", "3FA", "3FM", "NM0", "MAJ")
_add(("HYUNDAI",), "KMH", "KM8", "TMA", "NLH", "5NP", "5NM", "MAL")
_add(("KIA",), "KNA", "KND", "KNE", "U5Y", "5XY", "3KP")
_add(("JEEP",), "ZAC", "1J4", "1J8")
_add(("CHRYSLER", "DODGE", "JEEP", "RAM"), "1C3", "1C4", "2C3", "2C4")
_add(("DODGE",), "1B3", "2B3")
_add(("RAM",), "1C6", "3C6", "3C7")
_add(("LANCIA",), "ZLA")
_add(("LEXUS",), "JTH", "JTJ", "2T2", "58A")
_add(("MASERATI",), "ZAM")
_add(("MERCEDES BENZ",), "WDB", "WDC", "WDD", "WDF", "W1K", "W1N", "W1V", "W1X", "4JG", "55S")
_add(("MINI",), "WMW", "WMZ")
_add(("NISSAN",), "JN1", "JN8", "SJN", "VSK", "1N4", "1N6", "3N1", "5N1")
_add(("OPEL", "VAUXHALL"), "W0L", "VXK")
_add(("OPEL",), "W0V")
_add(("PEUGEOT",), "VF3", "VR3")
_add(("POLESTAR",), "LPS")
_add(("RENAULT",), "VF1", "VF6")
_add(("SKODA",), "TMB")
_add(("TESLA",), "5YJ", "7SA", "7G2", "LRW", "XP7", "SFZ")
_add(("TOYOTA",), "JTD", "JTE", "JTM", "JTN", "JT2", "JT3", "SB1", "VNK", "NMT", "4T1", "4T3")
_add(("TOYOTA",), "5TD", "5TF", "2T1", "2T3")
_add(("VOLKSWAGEN",), "WVW", "WVG", "WV1", "WV2", "1VW", "3VW", "1V2", "3VV")
_add(("VOLVO",), "YV1", "YV4", "7JR", "LVY")


def makes_for_vin(vin: str) -> tuple[str, ...]:
    """The supported makes the VIN's manufacturer code can belong to (empty when unknown)."""
    return _WMI.get(vin[:3].upper(), ())


def make_from_vin(vin: str) -> str | None:
    """The make the VIN says, or None when its manufacturer code is unknown or shared."""
    makes = makes_for_vin(vin)
    return makes[0] if len(makes) == 1 else None
