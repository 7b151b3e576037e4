"""Resident ID numbers (GB 11643-1999): 17 digits + a check digit (0-9 or X), ISO 7064 MOD 11-2."""

from __future__ import annotations

from datetime import date

from shequtong_kit.errors import InvalidArgument

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"


def check_digit(first17: str) -> str:
    """The check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("17 digits expected")
    total = sum(int(digit) * weight for digit, weight in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def normalize_id_number(raw: str) -> str:
    """Validates and returns the canonical form (upper-case X). Errors never echo the number."""
    value = raw.strip().upper()
    if len(value) != 18 or not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
        raise InvalidArgument("an ID number has 18 characters: 17 digits and a digit or X", code="id_number_invalid")
    if value[0] == "0" or value[0] == "9":
        raise InvalidArgument("the ID number's region code is not valid", code="id_number_invalid")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidArgument("the ID number's birth date is not valid", code="id_number_invalid") from None
    if born.year < 1900:
        raise InvalidArgument("the ID number's birth date is not valid", code="id_number_invalid")
    if check_digit(value[:17]) != value[17]:
        raise InvalidArgument("the ID number's check digit is wrong", code="id_number_check_digit")
    return value
