"""PII redaction: e-mails, IPs and phone numbers become placeholders; code and numbers stay."""

from __future__ import annotations

import pytest

from pipeline.clean.config import PiiConfig
from pipeline.clean.pii import PiiRedactor

PUBLIC = PiiRedactor()
EVERY_IP = PiiRedactor(PiiConfig(ip_scope="all"))


def test_emails_are_replaced_and_counted():
    text, counts = PUBLIC.redact(
        "Write to jane.doe+news@mail.example.org or JOHN_SMITH@uni-heidelberg.de today."
    )
    assert text == "Write to <EMAIL> or <EMAIL> today."
    assert counts == {"emails": 2}


def test_public_ipv4_and_ipv6_are_replaced():
    text, counts = PUBLIC.redact("Resolvers 8.8.8.8 and 2606:4700:4700::1111 answered.")
    assert text == "Resolvers <IP> and <IP> answered."
    assert counts == {"ips": 2}


def test_private_loopback_and_documentation_ips_are_kept_by_default():
    text = "Bind 127.0.0.1, 10.0.0.1, 192.168.0.1, 192.0.2.1 or 2001:db8::1."
    assert PUBLIC.redact(text) == (text, {})
    redacted, counts = EVERY_IP.redact(text)
    assert redacted == "Bind <IP>, <IP>, <IP>, <IP> or <IP>."
    assert counts == {"ips": 5}


def test_ipv4_mapped_ipv6_address_is_one_address():
    assert EVERY_IP.redact("mapped ::ffff:8.8.4.4 here")[0] == "mapped <IP> here"


@pytest.mark.parametrize(
    "text",
    [
        "a[1::2] and b[::-1] and x[10:20]",  # slices
        "at 12:30:45 on 2024-05-01",  # times and dates
        "version 3.11.2 and 1.2.3.4.5 and 999.1.1.1",  # versions, not addresses
        "user@localhost and @decorator",  # not e-mail addresses
        "pi is 3.14159265359 and 2147483647 is the largest int",  # not phone numbers
    ],
)
def test_code_and_numbers_are_left_alone(text):
    assert EVERY_IP.redact(text) == (text, {})


def test_international_phone_numbers_are_replaced():
    text, counts = PUBLIC.redact("Call +1 415-429-6753 or +44 20 7946 0958, not (415) 429-6753.")
    assert text == "Call <PHONE> or <PHONE>, not (415) 429-6753."
    assert counts == {"phones": 2}


def test_a_phone_region_also_matches_national_numbers():
    us = PiiRedactor(PiiConfig(phone_region="US"))
    assert us.redact("Call (415) 429-6753.") == ("Call <PHONE>.", {"phones": 1})


def test_each_kind_can_be_turned_off():
    quiet = PiiRedactor(PiiConfig(emails=False, ips=False, phones=False))
    text = "a@mail.example.org 8.8.8.8 +1 415-429-6753"
    assert quiet.redact(text) == (text, {})


def test_a_long_run_without_separators_is_linear():
    # A quadratic pattern would take minutes on this; the look-behinds anchor each token.
    text = "a" * 2_000_000 + " " + "1" * 2_000_000
    assert PUBLIC.redact(text)[1] == {}
