"""Organisation numbers and national identity numbers: their checks and their errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ipunkt.identifiers import (
    InvalidIdentifier,
    OrganisationIdentifier,
    PersonIdentifier,
    parse_organisation,
    parse_party,
    parse_person,
    primary_identifier,
)

ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
K1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
K2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    """Modulus 11 worked out independently of the module under test."""
    total = sum(int(d) * w for d, w in zip(digits, weights, strict=True))
    digit = 11 - total % 11
    return {11: 0, 10: None}.get(digit, digit)


def with_checks(first_nine: str) -> str | None:
    k1 = check_digit(first_nine, K1)
    if k1 is None:
        return None
    k2 = check_digit(first_nine + str(k1), K2)
    return None if k2 is None else f"{first_nine}{k1}{k2}"


@pytest.mark.parametrize(
    ("value", "number", "part"),
    [
        ("910075918", "910075918", None),
        ("0192:910075918", "910075918", None),
        (" 0192:974720760 ", "974720760", None),
        ("9908:910075918", "910075918", None),
        ("0192:910077473:991825827", "910077473", "991825827"),
        ("310673145", "310673145", None),
    ],
)
def test_organisation_numbers(value: str, number: str, part: str | None) -> None:
    parsed = parse_party(value)
    assert isinstance(parsed, OrganisationIdentifier)
    assert (parsed.primary, parsed.part) == (number, part)


def test_the_qualified_form_keeps_icd_part_and_source_indicator() -> None:
    parsed = parse_organisation("0192:910077473:991825827:1")
    assert parsed.qualified == "0192:910077473:991825827:1"
    assert parsed.source_indicator == "1"
    assert str(parse_organisation("910075918")) == "0192:910075918"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("910075917", "check digit (mod 11) is wrong"),
        ("987654321", "check digit (mod 11) is wrong"),
        ("0192:91007591", "exactly 9 digits"),
        ("0193:910075918", "ICD 0193 is not a Norwegian organisation number scheme"),
        ("0192:", "expected an organisation number"),
        ("org 910075918", "expected an organisation number"),
        ("12345", "expected 9 digits (organisation number) or 11 digits"),
        ("", "the identifier is empty"),
        ("٩١٠٠٧٥٩١٨", "expected an organisation number"),
    ],
)
def test_bad_organisation_numbers_say_why(value: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        parse_party(value)
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"'{value}' is not a valid identifier: ")


def test_fodselsnummer_and_d_nummer() -> None:
    person = parse_party("09118532322")
    assert isinstance(person, PersonIdentifier)
    assert (person.d_number, person.synthetic) == (False, False)
    d_number = with_checks("410185323")  # 1 January 1985, day + 40
    assert d_number is not None
    parsed = parse_person(d_number)
    assert (parsed.d_number, parsed.synthetic) == (True, False)


@pytest.mark.parametrize("number", ["17912099997", "30878199614"])
def test_synthetic_numbers_only_when_allowed(number: str) -> None:
    with pytest.raises(InvalidIdentifier, match="synthetic test numbers are not allowed"):
        parse_party(number)
    parsed = parse_party(number, allow_synthetic=True)
    assert isinstance(parsed, PersonIdentifier) and parsed.synthetic


def test_nav_synthetic_numbers_raise_the_month_by_40() -> None:
    number = with_checks("154585323")  # 15 May 1985, month + 40
    assert number is not None
    with pytest.raises(InvalidIdentifier, match="synthetic"):
        parse_person(number)
    assert parse_person(number, allow_synthetic=True).synthetic


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("09118532323", "second check digit (mod 11) is wrong"),
        ("09118532312", "first check digit (mod 11) is wrong"),
        ("01017012345", "second check digit"),
        ("0911853232", "expected 9 digits (organisation number) or 11 digits"),
        ("0911853232x", "expected an organisation number"),
    ],
)
def test_bad_national_identity_numbers_say_why(value: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_party(value)


@pytest.mark.parametrize(
    ("first_nine", "reason"),
    [
        ("311185323", "the day of the birth date does not exist"),  # 31 November
        ("290285323", "the day of the birth date does not exist"),  # 29 Feb 1985
        ("011385325", "the month of the birth date is not 01-12"),
        ("017085323", "the month of the birth date is not 01-12"),
        ("000185323", "the day of the birth date does not exist"),
    ],
)
def test_birth_dates_must_exist(first_nine: str, reason: str) -> None:
    number = with_checks(first_nine)
    assert number is not None, f"{first_nine} has no valid check digits: pick another"
    with pytest.raises(InvalidIdentifier, match=reason):
        parse_person(number, allow_synthetic=True)


def test_leap_days_follow_the_century() -> None:
    leap = with_checks("290200523")  # 29 Feb 2000: individual number 523 means 2000-2039
    assert leap is not None and parse_person(leap).number == leap


@given(st.integers(min_value=0, max_value=99_999_999), st.data())
def test_every_single_digit_change_to_an_organisation_number_is_caught(
    body: int, data: st.DataObject
) -> None:
    digits = f"{body:08d}"
    check = check_digit(digits, ORG_WEIGHTS)
    if check is None:
        with pytest.raises(InvalidIdentifier):
            parse_organisation(digits + "0")
        return
    number = digits + str(check)
    assert parse_organisation(number).number == number
    position = data.draw(st.integers(min_value=0, max_value=8))
    replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    changed = number[:position] + replacement + number[position + 1 :]
    with pytest.raises(InvalidIdentifier, match="check digit"):
        parse_organisation(changed)


@pytest.mark.parametrize(
    ("value", "primary"),
    [
        ("987654321", "987654321"),
        ("0192:987654321", "987654321"),
        ("01017012345", "01017012345"),
    ],
)
def test_primary_identifier_checks_only_the_shape(value: str, primary: str) -> None:
    assert primary_identifier(value) == primary


@pytest.mark.parametrize("value", ["98765432", "abc", "0192:98765432x", "1234567890123"])
def test_primary_identifier_refuses_other_shapes(value: str) -> None:
    with pytest.raises(InvalidIdentifier, match="expected an organisation number"):
        primary_identifier(value)
