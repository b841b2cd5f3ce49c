"""Emails, phone numbers, URLs and payment card numbers taken out of a transcript before it is
stored: what a focus-group participant says is personal data.

Why these libraries, and not scrubadub: scrubadub 2.0.1 (the obvious all-in-one) pins
textblob 0.15.3 and pulls in nltk, scikit-learn, Faker and dateparser (about 400 MB); it
takes 1.9 s to import, and on the phrasings below it missed "07700 900123", "555-123-4567"
and card numbers written in groups. Its phone and card detectors are thin wrappers over the
libraries used here directly, each well kept and dependency-light:

- ``phonenumbers`` (Google's libphonenumber, released every few weeks with the numbering
  plans): ``PhoneNumberMatcher`` finds numbers as people write them, national or
  international, for each region asked for.
- ``urlextract``: finds URLs by their top-level domain against the IANA list it ships (it
  works offline; only its ``update()``, never called here, downloads a newer list), and
  emails with ``extract_email=True``: one scan does both, so a bare domain inside an
  address is never counted as a URL too.
- ``python-stdnum``: the Luhn check that tells a card number from any other long run of
  digits.

The only hand-written pattern is the one that proposes runs of 13 to 19 digits for the Luhn
check: no library finds card numbers in free text. They are imported lazily, inside the
functions, so the CLI does not pay for them at start-up; the first ``redact`` pays about 0.1 s
(imports, the TLD list, phonenumbers' metadata), later ones well under a millisecond.

Choices, each tested:

- A phone number is kept as a match of ``Leniency.POSSIBLE`` only when libphonenumber calls
  it valid for its region, or it has at least 10 digits. Valid-only would let through numbers
  a transcript really contains but that no numbering plan assigns (Ofcom's drama range
  07700 900xxx, the US 555 exchange, a digit misheard by Whisper); possible-only would take
  "2019" and "123456" for short local numbers.
- A card number is 13 to 19 digits, single spaces or dashes between them, that pass the
  Luhn check, or 16 digits written in the card's four groups of four whether or not they
  pass: one misheard digit fails the check and leaves fifteen right ones.
- Ordinary numbers are left alone: amounts ("20 pounds", "£1,299.99"), years, versions
  ("2.0"), dates ("12/05/2024", "2024-05-12"), times, and order or reference numbers of up to
  9 digits ("order 123456": not a personal identifier, and not phone-shaped). An unbroken run
  of 10 or 11 digits is indistinguishable from a phone number and is redacted as one.

Not caught (write-ups of speech that no library here recognises):

- Spoken forms: "jane dot doe at example dot com", "example dot co dot uk", and digits
  spelled out ("oh seven seven double oh..."). Whisper usually writes these as symbols and
  digits, which are caught; when it does not, they pass.
- A national number of under 10 digits from a country not in ``regions``, written without
  its country code ("030 123456", Berlin): pass ``regions=("DE",)`` (or more) for such a
  group. Numbers with "+" or "00" and a country code, and any of 10 digits or more (France's
  "06 12 34 56 78"), are caught whatever the regions.
- Names, addresses and postcodes: names need a named-entity model, which cannot be
  installed here.
- Words run into a domain by a missing space after a full stop ("Yes.it is") are taken for a
  URL: over-redaction, which costs a word, not a leak.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "url": "[URL]", "card": "[CARD]"}

# Runs of 13-19 digits, single spaces or dashes between them, not inside a longer number.
_CARD_RUN = re.compile(r"(?<![\d.,])\d(?:[ -]?\d){12,18}(?![\d]|[.,]\d)")
# The printed layout of most cards: four groups of four, one separator used throughout.
_CARD_GROUPS = re.compile(r"^\d{4}([ -])\d{4}\1\d{4}\1\d{4}$")
_MIN_PHONE_DIGITS = 10


@dataclass(frozen=True)
class Redacted:
    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_redacted(self) -> int:
        return sum(self.counts.values())


def redact(text: str, regions: tuple[str, ...] = ("GB", "US")) -> Redacted:
    """Replace emails, URLs, card numbers and phone numbers in ``text`` by placeholders.

    ``regions`` are ISO 3166 codes whose national formats of phone numbers are recognised.
    Order matters: URLs and emails first, so digits inside them are not read as a phone;
    cards before phones, so a card's groups are not read as phone numbers.
    """
    counts: dict[str, int] = {}
    text = _redact_urls_and_emails(text, counts)
    text = _redact_cards(text, counts)
    text = _redact_phones(text, regions, counts)
    return Redacted(text=text, counts={k: v for k, v in counts.items() if v})


def _replace_spans(text: str, spans: list[tuple[int, int, str]], counts: dict[str, int]) -> str:
    """Spans are (start, end, kind); overlapping ones keep the first found."""
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans, key=lambda s: (s[0], -s[1])):
        if kept and start < kept[-1][1]:
            continue
        kept.append((start, end, kind))
    for start, end, kind in reversed(kept):
        text = text[:start] + PLACEHOLDERS[kind] + text[end:]
        counts[kind] = counts.get(kind, 0) + 1
    return text


@functools.cache
def _url_extractor():
    from urlextract import URLExtract

    return URLExtract(extract_email=True)


def _redact_urls_and_emails(text: str, counts: dict[str, int]) -> str:
    spans = []
    for found, (start, end) in _url_extractor().find_urls(text, get_indices=True):
        kind = "email" if "@" in found and "://" not in found else "url"
        spans.append((start, end, kind))
    return _replace_spans(text, spans, counts)


def _redact_cards(text: str, counts: dict[str, int]) -> str:
    from stdnum import luhn

    spans = []
    for m in _CARD_RUN.finditer(text):
        run = m.group()
        digits = re.sub(r"\D", "", run)
        # No payment card starts with 0 (ISO/IEC 7812); a long number that does is a phone.
        if (digits[0] != "0" and luhn.is_valid(digits)) or _CARD_GROUPS.match(run):
            spans.append((m.start(), m.end(), "card"))
    return _replace_spans(text, spans, counts)


def _redact_phones(text: str, regions: tuple[str, ...], counts: dict[str, int]) -> str:
    import phonenumbers

    for region in regions:
        spans = []
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            n_digits = sum(c.isdigit() for c in m.raw_string)
            if phonenumbers.is_valid_number(m.number) or n_digits >= _MIN_PHONE_DIGITS:
                spans.append((m.start, m.end, "phone"))
        text = _replace_spans(text, spans, counts)
    return text
