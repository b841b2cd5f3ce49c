"""Redaction of transcripts: each kind of identifier as Whisper writes speech, the ordinary
numbers of a focus group left alone, idempotence and counts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from ser_pipeline.transcripts.redaction import Redacted, redact


def _check(text: str, identifier: str, placeholder: str, kept: list[str], **kwargs) -> Redacted:
    out = redact(text, **kwargs)
    assert identifier not in out.text, out.text
    assert placeholder in out.text, out.text
    for word in kept:
        assert word in out.text, (word, out.text)
    return out


@pytest.mark.parametrize(
    ("text", "identifier", "kept"),
    [
        ("you can reach me on 07700 900123 after six", "07700 900123", ["you can reach me on", "after six"]),
        ("Call 555-123-4567 if you want to.", "555-123-4567", ["Call", "if you want to."]),
        ("My number's +44 20 7946 0958, the office.", "+44 20 7946 0958", ["My number's", ", the office."]),
        ("it's 020 7946 0958 at work", "020 7946 0958", ["it's", "at work"]),
        ("text me on 07700900123 yeah", "07700900123", ["text me on", "yeah"]),
        ("the US one is (212) 555-0123 I think", "(212) 555-0123", ["the US one is", "I think"]),
        ("my sister in Paris, +33 1 23 45 67 89, loves it", "+33 1 23 45 67 89", ["my sister in Paris,", ", loves it"]),
        ("from Berlin, 0049 30 12345678, he called", "0049 30 12345678", ["from Berlin,", ", he called"]),
    ],
)
def test_phone_numbers(text, identifier, kept):
    out = _check(text, identifier, "[PHONE]", kept)
    assert out.counts == {"phone": 1}


def test_a_short_national_number_needs_its_region():
    """A 9-digit German number written nationally is caught only when DE is asked for."""
    assert redact("ruf 030 123456 an").text == "ruf 030 123456 an"
    _check("ruf 030 123456 an", "123456", "[PHONE]", ["ruf", "an"], regions=("GB", "DE"))


@pytest.mark.parametrize(
    ("text", "identifier", "kept"),
    [
        ("my email is jane.doe@example.com if you need it", "jane.doe@example.com", ["my email is", "if you need it"]),
        ("Send it to Jane.Doe@Example.co.uk.", "Jane.Doe@Example.co.uk", ["Send it to", "."]),
        ("it's bob_smith+offers@mail.example.org, all lower case", "bob_smith+offers@mail.example.org", ["it's", ", all lower case"]),
    ],
)
def test_emails(text, identifier, kept):
    out = _check(text, identifier, "[EMAIL]", kept)
    assert out.counts == {"email": 1}  # the domain inside the address is not a URL as well


@pytest.mark.parametrize(
    ("text", "identifiers", "n_urls", "kept"),
    [
        ("go to www.example.co.uk/offers or https://shop.example.com", ["www.example.co.uk", "shop.example.com"], 2, ["go to", " or "]),
        ("I saw it on example.com, it was cheaper", ["example.com"], 1, ["I saw it on", ", it was cheaper"]),
        ("Amazon.co.uk is where I buy it.", ["Amazon.co.uk"], 1, ["is where I buy it."]),
        # The digits in the query are the URL's, not a phone number.
        ("the link was http://example.com/p?id=07700900123 I think", ["example.com", "07700900123"], 1, ["the link was", "I think"]),
    ],
)
def test_urls(text, identifiers, n_urls, kept):
    out = redact(text)
    for identifier in identifiers:
        assert identifier not in out.text, out.text
    for word in kept:
        assert word in out.text, (word, out.text)
    assert out.counts == {"url": n_urls}


@pytest.mark.parametrize(
    ("text", "identifier", "kept"),
    [
        ("my card is 4111 1111 1111 1111 and it expires soon", "4111 1111 1111 1111", ["my card is", "and it expires soon"]),
        ("the number was 4111-1111-1111-1111.", "4111-1111-1111-1111", ["the number was", "."]),
        ("long number, 4111111111111111, on the back", "4111111111111111", ["long number,", ", on the back"]),
        ("Amex, 3782 822463 10005, gold one", "3782 822463 10005", ["Amex,", ", gold one"]),
        # One digit misheard: fails the Luhn check, still laid out as a card.
        ("my card is 4111 1111 1111 1112 yes", "4111 1111 1111 1112", ["my card is", "yes"]),
    ],
)
def test_card_numbers(text, identifier, kept):
    out = _check(text, identifier, "[CARD]", kept)
    assert out.counts == {"card": 1}  # and no phone numbers read in its groups


@pytest.mark.parametrize(
    "text",
    [
        "I paid 20 pounds for it in 2019.",
        "I use it three times a week, maybe 3 or 4 times.",
        "version 2.0 was better than 1.5",
        "it arrived on 12/05/2024, or 12.05.2024, or 2024-05-12",
        "it cost £1,299.99, down from £1,499",
        "about 1,000,000 people, 1 in 4 of them, 3.5 stars, 0.5% off",
        "at 10:30 am, or 10.30",
        "my order number was 123456",
        "between 100 and 200, maybe 300 400",
        "Mr. Smith said e.g. the U.S. one at 5 p.m.",
    ],
)
def test_ordinary_numbers_are_untouched(text):
    out = redact(text)
    assert out.text == text
    assert out.counts == {}
    assert out.n_redacted == 0


def test_spoken_email_is_not_caught():
    """Documented limitation: no library here reads 'dot' and 'at' as symbols."""
    assert redact("jane dot doe at example dot com").text == "jane dot doe at example dot com"


MIXED = (
    "Hi, I'm on 07700 900123 or +44 20 7946 0958, email jane.doe@example.com, "
    "see www.example.co.uk/offers; my card is 4111 1111 1111 1111 and I paid £20 in 2019."
)


def test_counts_and_total():
    out = redact(MIXED)
    assert out.counts == {"email": 1, "url": 1, "card": 1, "phone": 2}
    assert out.n_redacted == 5
    assert out.text == (
        "Hi, I'm on [PHONE] or [PHONE], email [EMAIL], "
        "see [URL]; my card is [CARD] and I paid £20 in 2019."
    )


def test_idempotent():
    once = redact(MIXED)
    twice = redact(once.text)
    assert twice.text == once.text
    assert twice.counts == {}
    assert redact("").text == ""


def test_result_is_frozen():
    out = redact("call 555-123-4567")
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.text = "x"  # type: ignore[misc]


def test_libraries_are_imported_lazily():
    """The CLI imports the package at start-up; the detectors load on the first redact()."""
    code = (
        "import sys, ser_pipeline.transcripts.redaction; "
        "print(sorted(m for m in ('phonenumbers', 'urlextract', 'stdnum') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
