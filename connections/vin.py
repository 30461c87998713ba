"""VIN rules: normalising a typed or pasted VIN and checking it (length,
alphabet, check digit, model year), with plain-English problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import models


class Validity(models.TextChoices):
    """What validation made of a row (`VinEntry.validity`)."""

    VALID = "valid", "Valid"
    WARNING = "warning", "Valid with a warning"
    INVALID = "invalid", "Invalid"


VALID = Validity.VALID
WARNING = Validity.WARNING
INVALID = Validity.INVALID


# Volteras' sandbox answers these prefixes with scripted outcomes. They are
# built with zeros where a real VIN would have letters, so they rarely carry a
# valid check digit; they must still go through so demos and tests can use them.
SANDBOX_TEST_PREFIXES: tuple[str, ...] = (
    "PERR0R11",
    "1NC0MP11",
    "PR0C11",
    "ALERT511",
    # A connect group that ends FAILED, and the two eligibility answers of a
    # check that could not decide (see sandbox/README.md).
    "FA1LGRP1",
    "1NELPND1",
    "EFA1LED1",
)


VIN_LENGTH = 17


EARLIEST_MODEL_YEAR = 1980


_TRANSLITERATION = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}


_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015]+")


_NOT_VIN_ALPHABET = re.compile(r"[^A-Z0-9]")


_LOOKALIKES = {"I": "1", "O": "0", "Q": "0"}


def normalise_vin(raw: str | None) -> str:
    """The VIN as Volteras wants it: upper case, no spaces or dashes."""
    if not raw:
        return ""
    return _SEPARATORS.sub("", raw).upper()


def check_digit(vin: str) -> str:
    """The ISO 3779 check digit (position 9) a 17-character VIN should carry."""
    total = sum(_TRANSLITERATION[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def is_north_american(vin: str) -> bool:
    """VINs of vehicles built for North America must carry a correct check digit."""
    return vin[:1] in {"1", "2", "3", "4", "5"}


def is_sandbox_test_vin(vin: str) -> bool:
    return vin.startswith(SANDBOX_TEST_PREFIXES)


@dataclass(frozen=True, slots=True)
class VinCheck:
    vin: str
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    sandbox_test: bool = False

    @property
    def validity(self) -> str:
        if self.errors:
            return INVALID
        return WARNING if self.warnings else VALID

    @property
    def is_valid(self) -> bool:
        """Whether the VIN can be sent (possibly with a warning)."""
        return not self.errors


def check_vin(vin: str) -> VinCheck:
    """Check a normalised VIN's form: length, alphabet and check digit."""
    if not vin:
        return VinCheck(
            vin, errors=("There is no VIN on this line. Add the vehicle's 17-character VIN.",)
        )
    errors: list[str] = []
    strange = sorted(set(_NOT_VIN_ALPHABET.findall(vin)))
    if strange:
        shown = " ".join(repr(c) for c in strange)
        errors.append(
            f"The VIN contains {shown}, which cannot be part of a VIN: "
            "VINs use only letters and digits. Remove or correct it."
        )
    for letter, digit in _LOOKALIKES.items():
        if letter in vin:
            errors.append(
                f"The VIN contains the letter {letter}, which VINs never use. "
                f"It is probably the digit {digit}: check the VIN on the registration document."
            )
    if len(vin) != VIN_LENGTH:
        errors.append(
            f"The VIN has {len(vin)} characters but a VIN has exactly {VIN_LENGTH}. "
            "Check for a missing or extra character."
        )
    sandbox_test = is_sandbox_test_vin(vin)
    if errors or sandbox_test:
        return VinCheck(vin, errors=tuple(errors), sandbox_test=sandbox_test)
    expected = check_digit(vin)
    if vin[8] == expected:
        return VinCheck(vin)
    if is_north_american(vin):
        return VinCheck(
            vin,
            errors=(
                f"The VIN's check digit (9th character, {vin[8]}) does not match the rest of "
                "the VIN, so a character is probably mistyped. North American VINs always "
                "carry a correct check digit: compare the VIN with the registration document.",
            ),
        )
    return VinCheck(
        vin,
        warnings=(
            f"The VIN's 9th character ({vin[8]}) is not a valid check digit. Many European "
            "manufacturers do not use one, so this may be fine, but check the VIN for a typo.",
        ),
    )
