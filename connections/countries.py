"""Countries as people type them, and the Volteras region each belongs to."""

from __future__ import annotations

import functools

from django.db import models

from connections.makes import (
    comparison_key,
)


class Region(models.TextChoices):
    EUROPE = "EUROPE", "Europe"
    NORTH_AMERICA = "NORTH_AMERICA", "North America"


# ISO 3166-1 alpha-2, as published in the tz database's iso3166.tab.
_ALPHA2 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
"""


COUNTRY_CODES: frozenset[str] = frozenset(_ALPHA2.split())


# Where Volteras' European platform applies (Hyundai and Kia connect only here).
_EUROPE = """
    AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE
    LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS SE SI SJ SK SM TR UA VA
"""


EUROPEAN_COUNTRIES: frozenset[str] = frozenset(_EUROPE.split())


NORTH_AMERICAN_COUNTRIES: frozenset[str] = frozenset({"US", "CA", "MX", "PR"})


# What people write instead of the alpha-2 code, compared lower-case without
# punctuation. Alpha-3 and names for the markets Volteras serves, not the world.
_COUNTRY_SPELLINGS: dict[str, str] = {
    "uk": "GB",
    "el": "GR",
    "gbr": "GB",
    "unitedkingdom": "GB",
    "greatbritain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northernireland": "GB",
    "deu": "DE",
    "ger": "DE",
    "germany": "DE",
    "deutschland": "DE",
    "fra": "FR",
    "france": "FR",
    "nld": "NL",
    "netherlands": "NL",
    "thenetherlands": "NL",
    "holland": "NL",
    "nederland": "NL",
    "bel": "BE",
    "belgium": "BE",
    "belgie": "BE",
    "belgique": "BE",
    "lux": "LU",
    "luxembourg": "LU",
    "esp": "ES",
    "spain": "ES",
    "espana": "ES",
    "prt": "PT",
    "portugal": "PT",
    "ita": "IT",
    "italy": "IT",
    "italia": "IT",
    "irl": "IE",
    "ireland": "IE",
    "aut": "AT",
    "austria": "AT",
    "osterreich": "AT",
    "che": "CH",
    "switzerland": "CH",
    "schweiz": "CH",
    "suisse": "CH",
    "swe": "SE",
    "sweden": "SE",
    "nor": "NO",
    "norway": "NO",
    "dnk": "DK",
    "denmark": "DK",
    "fin": "FI",
    "finland": "FI",
    "isl": "IS",
    "iceland": "IS",
    "pol": "PL",
    "poland": "PL",
    "cze": "CZ",
    "czechia": "CZ",
    "czechrepublic": "CZ",
    "svk": "SK",
    "slovakia": "SK",
    "hun": "HU",
    "hungary": "HU",
    "rou": "RO",
    "romania": "RO",
    "bgr": "BG",
    "bulgaria": "BG",
    "grc": "GR",
    "greece": "GR",
    "hrv": "HR",
    "croatia": "HR",
    "svn": "SI",
    "slovenia": "SI",
    "est": "EE",
    "estonia": "EE",
    "lva": "LV",
    "latvia": "LV",
    "ltu": "LT",
    "lithuania": "LT",
    "cyp": "CY",
    "cyprus": "CY",
    "mlt": "MT",
    "malta": "MT",
    "tur": "TR",
    "turkey": "TR",
    "turkiye": "TR",
    "usa": "US",
    "unitedstates": "US",
    "unitedstatesofamerica": "US",
    "america": "US",
    "can": "CA",
    "canada": "CA",
    "mex": "MX",
    "mexico": "MX",
}


@functools.lru_cache(maxsize=512)
def normalise_country(text: str) -> str | None:
    """The ISO 3166-1 alpha-2 code for what a person wrote, or None when unknown."""
    upper = text.strip().upper()
    if upper in COUNTRY_CODES:
        return upper
    return _COUNTRY_SPELLINGS.get(comparison_key(text))


def region_of_country(code: str) -> str | None:
    if code in EUROPEAN_COUNTRIES:
        return Region.EUROPE
    if code in NORTH_AMERICAN_COUNTRIES:
        return Region.NORTH_AMERICA
    return None
