"""PII redaction: e-mail addresses, IP addresses and phone numbers become placeholders.

E-mails and IPs are found by regular expressions; IP candidates are confirmed by `ipaddress`
(which also tells public from private, loopback and documentation ranges). Phone numbers are
found by `phonenumbers`, the Python port of Google's libphonenumber. Every pattern is anchored
at a token start (a look-behind), so a long run of letters or digits costs linear time.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

import phonenumbers

from pipeline.clean.config import PiiConfig

EMAIL = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
)
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
# Candidates only; `ipaddress` decides. Times (12:30:45) and slices (a[1::2]) fail there or below.
IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?![\w:]|\.\w)"
)
PHONE_HINT = re.compile(r"\+\s?\(?\d")


def _ipv6_shaped(candidate: str) -> bool:
    """At least two hex groups and either three colons or a group of three or more digits:
    what an address looks like, unlike `x[1::2]`."""
    groups = [g for g in candidate.split(":") if g]
    return len(groups) >= 2 and (candidate.count(":") >= 3 or max(map(len, groups)) >= 3)


class PiiRedactor:
    """Replaces PII in a text and counts what it replaced."""

    def __init__(self, cfg: PiiConfig | None = None):
        self.cfg = cfg or PiiConfig()

    def redact(self, text: str) -> tuple[str, Counter[str]]:
        counts: Counter[str] = Counter()
        cfg = self.cfg
        if cfg.emails and "@" in text:
            text = self._sub(EMAIL, text, cfg.email_placeholder, counts, "emails")
        if cfg.ips:
            # IPv6 first: an IPv4-mapped address (::ffff:8.8.4.4) is one address, not two.
            if "::" in text or text.count(":") >= 7:
                text = self._sub(IPV6, text, cfg.ip_placeholder, counts, "ips", self._is_ipv6)
            text = self._sub(IPV4, text, cfg.ip_placeholder, counts, "ips", self._is_ip)
        if cfg.phones:
            text = self._phones(text, counts)
        return text, counts

    @staticmethod
    def _sub(pattern, text, placeholder, counts, kind, valid=None) -> str:
        def replace(match: re.Match) -> str:
            if valid is not None and not valid(match.group(0)):
                return match.group(0)
            counts[kind] += 1
            return placeholder

        return pattern.sub(replace, text)

    def _is_ip(self, candidate: str) -> bool:
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            return False
        return self.cfg.ip_scope == "all" or address.is_global

    def _is_ipv6(self, candidate: str) -> bool:
        return _ipv6_shaped(candidate) and self._is_ip(candidate)

    def _phones(self, text: str, counts: Counter[str]) -> str:
        region = self.cfg.phone_region
        # Without a region only international numbers (+CC ...) can match: skip texts with none.
        if region is None and not PHONE_HINT.search(text):
            return text
        matches = list(phonenumbers.PhoneNumberMatcher(text, region or "ZZ"))
        for match in reversed(matches):  # from the end, so earlier offsets stay valid
            text = text[: match.start] + self.cfg.phone_placeholder + text[match.end :]
        if matches:
            counts["phones"] += len(matches)
        return text
