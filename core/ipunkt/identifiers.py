"""Norwegian party identifiers: organisation numbers and national identity numbers.

eFormidling addresses an organisation as ISO 6523 ``0192:<orgnr>`` (``9908`` in old
fixtures), optionally with a part (``0192:<orgnr>:<part>``, used for "on behalf of" senders)
and a source indicator, and a citizen by an 11-digit fødselsnummer or D-nummer. Both carry
modulus-11 check digits, so a mistyped number is caught here, before a registry lookup.
Synthetic test numbers (Skatteetaten's Tenor, month + 80; NAV's test data, month + 40) are
refused unless the operator allows them, as ``difi.move.identifier.synthetic.allow`` does.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

NORWEGIAN_ORGANISATION_ICD = "0192"
"""The ICD of Norwegian organisation numbers (Enhetsregisteret)."""
LEGACY_ORGANISATION_ICD = "9908"
"""The older ICD for the same numbers, still found in old fixtures."""
ORGANISATION_ICDS = frozenset({NORWEGIAN_ORGANISATION_ICD, LEGACY_ORGANISATION_ICD})

_ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
_PERSON_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_PERSON_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_ISO6523 = re.compile(
    r"^(?P<icd>\d{4}):(?P<org>[^:]{1,35})(?::(?P<part>[^\s:]{1,35}))?(?::(?P<source>\d))?$"
)


class InvalidIdentifier(ValueError):
    """A value that is not a valid organisation number or national identity number.

    ``str(error)`` is a sentence meant for the person who sent the value.
    """

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"'{value}' is not a valid identifier: {reason}")
        self.value = value
        self.reason = reason


def _mod11(digits: str, weights: tuple[int, ...]) -> int | None:
    """The modulus-11 check digit of ``digits``, or ``None`` when no digit is possible (10)."""
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    check = (11 - remainder) % 11
    return None if check == 10 else check


@dataclass(frozen=True)
class OrganisationIdentifier:
    """An organisation as eFormidling addresses it: ``0192:<orgnr>[:<part>[:<source>]]``."""

    number: str
    """The 9-digit organisation number."""
    icd: str = NORWEGIAN_ORGANISATION_ICD
    part: str | None = None
    """The organisation part (an "on behalf of" organisation), when given."""
    source_indicator: str | None = None

    @property
    def primary(self) -> str:
        """The bare organisation number, as the Service Registry and the API's filters use it."""
        return self.number

    @property
    def qualified(self) -> str:
        """The ISO 6523 form used in SBD headers."""
        text = f"{self.icd}:{self.number}"
        if self.part is not None:
            text += f":{self.part}"
            if self.source_indicator is not None:
                text += f":{self.source_indicator}"
        return text

    def __str__(self) -> str:
        return self.qualified


@dataclass(frozen=True)
class PersonIdentifier:
    """A citizen's fødselsnummer or D-nummer (11 digits)."""

    number: str
    d_number: bool = False
    """A D-nummer (given to people without a fødselsnummer): the day is raised by 40."""
    synthetic: bool = False
    """A synthetic test number: the month is raised by 80 (Tenor) or 40 (NAV)."""

    @property
    def primary(self) -> str:
        return self.number

    @property
    def qualified(self) -> str:
        return self.number

    def __str__(self) -> str:
        return self.number


PartyIdentifier = OrganisationIdentifier | PersonIdentifier


def check_organisation_number(value: str) -> str:
    """Check a bare 9-digit organisation number and return it; raise :class:`InvalidIdentifier`."""
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        raise InvalidIdentifier(value, "an organisation number has exactly 9 digits (0-9)")
    if _mod11(value[:8], _ORG_WEIGHTS) != int(value[8]):
        raise InvalidIdentifier(value, "the organisation number's check digit (mod 11) is wrong")
    return value


def parse_organisation(value: str) -> OrganisationIdentifier:
    """Parse ``910075918``, ``0192:910075918`` or ``0192:910075918:<part>[:<source>]``."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return OrganisationIdentifier(check_organisation_number(text))
    match = _ISO6523.match(text)
    if match is None:
        raise InvalidIdentifier(
            value, "expected an organisation number, '0192:<orgnr>' or '0192:<orgnr>:<part>'"
        )
    icd = match["icd"]
    if icd not in ORGANISATION_ICDS:
        raise InvalidIdentifier(
            value, f"ICD {icd} is not a Norwegian organisation number scheme (use 0192)"
        )
    try:
        number = check_organisation_number(match["org"])
    except InvalidIdentifier as error:
        raise InvalidIdentifier(value, error.reason) from None
    return OrganisationIdentifier(number, icd, match["part"], match["source"])


def _century(year: int, individual: int) -> int | None:
    """The birth year's century from the individual number (Skatteetaten's ranges)."""
    if individual <= 499:
        return 1900
    if individual <= 749 and year >= 54:
        return 1800
    if year <= 39:
        return 2000
    if individual >= 900:
        return 1900
    return None


def parse_person(value: str, *, allow_synthetic: bool = False) -> PersonIdentifier:
    """Check an 11-digit fødselsnummer or D-nummer: both check digits and the birth date."""
    text = value.strip()
    if len(text) != 11 or not text.isascii() or not text.isdigit():
        raise InvalidIdentifier(value, "a fødselsnummer or D-nummer has exactly 11 digits (0-9)")
    if _mod11(text[:9], _PERSON_WEIGHTS_1) != int(text[9]):
        raise InvalidIdentifier(value, "the first check digit (mod 11) is wrong")
    if _mod11(text[:10], _PERSON_WEIGHTS_2) != int(text[10]):
        raise InvalidIdentifier(value, "the second check digit (mod 11) is wrong")
    day, month, year = int(text[0:2]), int(text[2:4]), int(text[4:6])
    d_number = day > 40
    if d_number:
        day -= 40
    synthetic = month > 40
    month -= 80 if month > 80 else 40 if month > 40 else 0
    if not 1 <= month <= 12:
        raise InvalidIdentifier(value, "the month of the birth date is not 01-12")
    if synthetic and not allow_synthetic:
        raise InvalidIdentifier(
            value, "synthetic test numbers are not allowed (set lookup.allow_synthetic_identifiers)"
        )
    century = _century(year, int(text[6:9]))
    last_day = calendar.monthrange(century + year if century else 2000, month)[1]
    if not 1 <= day <= last_day:
        raise InvalidIdentifier(value, "the day of the birth date does not exist")
    return PersonIdentifier(text, d_number=d_number, synthetic=synthetic)


def parse_party(value: str, *, allow_synthetic: bool = False) -> PartyIdentifier:
    """Parse a receiver or sender: an organisation (9 digits or ISO 6523) or a person (11)."""
    text = value.strip()
    if not text:
        raise InvalidIdentifier(value, "the identifier is empty")
    digits = text.isascii() and text.isdigit()
    if digits and len(text) == 11:
        return parse_person(text, allow_synthetic=allow_synthetic)
    if digits and len(text) != 9:
        raise InvalidIdentifier(
            value, "expected 9 digits (organisation number) or 11 digits (fødselsnummer)"
        )
    return parse_organisation(text)


def primary_identifier(value: str) -> str:
    """The bare 9- or 11-digit number of an identifier, checking its shape but not its digits.

    The capabilities endpoint and ``ipunkt lookup`` use this: like the integrasjonspunkt they
    leave it to the registry to say whether the number exists, so a number that fails the
    mod-11 check is answered "not found" rather than refused.
    """
    text = value.strip()
    match = _ISO6523.match(text)
    if match is not None and match["icd"] in ORGANISATION_ICDS:
        text = match["org"]
    if text.isascii() and text.isdigit() and len(text) in (9, 11):
        return text
    raise InvalidIdentifier(
        value,
        "expected an organisation number (9 digits, optionally '0192:'-prefixed) "
        "or a fødselsnummer (11 digits)",
    )
