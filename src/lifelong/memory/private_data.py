"""Private data in what a mind is asked to learn: found before anything is stored, and handled
by the mind's policy (redact it, keep it but never train on it, refuse it, or allow it).

A module trained on a card number can recite it to anyone the model serves, and no forget
afterwards is as safe as never training on it. Detection uses Microsoft Presidio's pattern
recognizers (checksums for cards, IBANs and national ids; Google's libphonenumber for phones)
and Yelp's detect-secrets for API keys and tokens. Both run offline with nothing to download.
Presidio's person-name recognizer needs a spaCy NER model that no package registry ships, so
person names come from a census-lexicon recognizer (memory/person_names.py); by default they
are only reported, since learning about people is much of what a mind is for.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from lifelong.errors import InputError
from lifelong.memory.person_names import find_person_names

# kind -> what it covers, in the words `lifelong learn` reports
KINDS: dict[str, str] = {
    "secret": "secret (API key, token or password)",
    "payment_card": "payment card number",
    "iban": "IBAN",
    "national_id": "national id number",
    "email": "e-mail address",
    "phone": "phone number",
    "ip_address": "IP address",
    "person": "person's name",
}
ACTIONS = ("redact", "no-train", "refuse", "allow")
# Never train on anything detected but names; secrets, cards and national ids are also never stored.
# Names are found and reported, and trained on unless the policy says otherwise.
DEFAULT_POLICY: dict[str, str] = {
    "secret": "redact",
    "payment_card": "redact",
    "national_id": "redact",
    "iban": "no-train",
    "email": "no-train",
    "phone": "no-train",
    "ip_address": "no-train",
    "person": "allow",
}

_PRESIDIO_KINDS = {
    "EMAIL_ADDRESS": "email", "PHONE_NUMBER": "phone", "CREDIT_CARD": "payment_card", "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip_address", "US_SSN": "national_id", "US_ITIN": "national_id", "UK_NINO": "national_id",
    "US_PASSPORT": "national_id", "IN_AADHAAR": "national_id", "IT_FISCAL_CODE": "national_id",
    "ES_NIF": "national_id", "PL_PESEL": "national_id", "FI_PERSONAL_IDENTITY_CODE": "national_id",
    "PASSWORD": "secret",
}
_SECRET_PLUGINS = ["AWSKeyDetector", "AzureStorageKeyDetector", "BasicAuthDetector", "DiscordBotTokenDetector",
                   "GitHubTokenDetector", "GitLabTokenDetector", "JwtTokenDetector", "MailchimpDetector", "NpmDetector",
                   "OpenAIDetector", "PrivateKeyDetector", "PypiTokenDetector", "KeywordDetector", "SendGridDetector",
                   "SlackDetector", "StripeDetector", "TelegramBotTokenDetector", "TwilioKeyDetector"]
# Presidio and detect-secrets look for keys in code and config; people write "my password is X".
_PROSE_PASSWORD = r"(?i)\b(?:password|passcode|passwd|pwd|pin)\s*(?:is|was|:|=)\s*[\"']?(\S{4,}?)[\"'.,;]?(?=\s|$)"
_MIN_SCORE = 0.4  # presidio's phone recognizer scores a bare match 0.4; lower scores are context-only guesses


@dataclass(frozen=True)
class Finding:
    """One piece of private data: its kind and where it is in the text."""

    kind: str
    start: int
    end: int
    detector: str


@dataclass(frozen=True)
class Screened:
    """A text after the policy: what to store, and what was found and done about it."""

    text: str
    findings: tuple[Finding, ...]
    redacted: tuple[str, ...] = ()  # kinds replaced by a placeholder
    no_train: tuple[str, ...] = ()  # kinds kept in the memory that sleep must never train on
    refused: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()  # kinds found and, by policy, stored and trained on as written

    def to_dict(self) -> dict[str, Any]:
        return {"redacted": list(self.redacted), "kept_out_of_training": list(self.no_train),
                "allowed": list(self.allowed)}


@dataclass(frozen=True)
class PrivacyPolicy:
    """What to do with each kind of private data; read from the mind's config.toml `[privacy]`."""

    actions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_POLICY))

    @classmethod
    def from_mapping(cls, given: Mapping[str, Any]) -> PrivacyPolicy:
        unknown = sorted(set(given) - set(KINDS))
        if unknown:
            raise InputError(f"unknown private-data kind {', '.join(unknown)} in [privacy]; choose from: {', '.join(KINDS)}")
        bad = {k: v for k, v in given.items() if v not in ACTIONS}
        if bad:
            kind, value = next(iter(bad.items()))
            raise InputError(f"[privacy] {kind} = {value!r} is not an action; choose from: {', '.join(ACTIONS)}")
        return cls({**DEFAULT_POLICY, **given})

    def overrides(self) -> dict[str, str]:
        """The entries that differ from the default, which is all config.toml needs to hold."""
        return {k: v for k, v in self.actions.items() if DEFAULT_POLICY.get(k) != v}

    def screen(self, text: str) -> Screened:
        """Find private data in `text` and apply the policy. Refusal is reported, not raised,
        so a caller can check a whole batch before storing any of it."""
        findings = tuple(find_private_data(text))
        acted: dict[str, set[str]] = {action: set() for action in ACTIONS}
        for finding in findings:
            acted[self.actions.get(finding.kind, "no-train")].add(finding.kind)
        kept = text
        for finding in sorted((f for f in findings if self.actions.get(f.kind) == "redact"), key=lambda f: -f.start):
            kept = kept[: finding.start] + f"[{finding.kind.upper()}]" + kept[finding.end:]
        return Screened(kept, findings, tuple(sorted(acted["redact"])), tuple(sorted(acted["no-train"])),
                        tuple(sorted(acted["refuse"])), tuple(sorted(acted["allow"])))


def find_private_data(text: str) -> list[Finding]:
    """Every piece of private data in `text`, overlaps merged (the longest span wins), in order."""
    found = [*_presidio_findings(text), *_secret_findings(text),
             *(Finding("person", n.start, n.end, f"census names ({n.why})") for n in find_person_names(text))]
    found.sort(key=lambda f: (f.start, -(f.end - f.start)))
    merged: list[Finding] = []
    for finding in found:
        if merged and finding.start < merged[-1].end:
            last = merged[-1]
            keep = finding if _outranks(finding, last) else last  # one finding covering both
            merged[-1] = Finding(keep.kind, last.start, max(last.end, finding.end), keep.detector)
            continue
        merged.append(finding)
    return merged


def _outranks(a: Finding, b: Finding) -> bool:
    """The longer span names an overlap; on a tie the more sensitive kind (earlier in KINDS)
    does, so a national id that also parses as a phone number is handled as a national id."""
    order = list(KINDS)
    return (a.end - a.start, -order.index(a.kind)) > (b.end - b.start, -order.index(b.kind))


def describe(kinds: Sequence[str]) -> str:
    return ", ".join(KINDS.get(k, k) for k in kinds)


@contextmanager
def _optional_engines_hidden() -> Iterator[None]:
    """Importing presidio loads every NLP engine it ships, and through them transformers and
    torch (thinc asks torch for a device): 9.7 s of a 10 s `lifelong learn` on this machine,
    though lifelong uses only its pattern recognizers. Both are optional imports there (try/
    except ImportError), so they are hidden while presidio imports (a None entry in sys.modules
    makes an import raise ImportError) and restored at once; the import then takes about 2 s.
    Modules a process already imported are left alone."""
    hidden = [name for name in ("torch", "transformers") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


@lru_cache(maxsize=1)
def _recognizers() -> tuple[Any, ...]:
    """Presidio's pattern recognizers, built once per process (a mind that never learns never
    pays for importing presidio)."""
    import tldextract

    with _optional_engines_hidden():
        from presidio_analyzer import Pattern, PatternRecognizer
        from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer, IbanRecognizer,
                                                              IpRecognizer, PhoneRecognizer, UkNinoRecognizer,
                                                              UsItinRecognizer, UsSsnRecognizer)

    offline_domains = tldextract.TLDExtract(suffix_list_urls=())  # the packaged suffix list: no network at learn time

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_domains(pattern_text).fqdn != ""

    class InternationalPhoneRecognizer(PhoneRecognizer):
        """Numbers written with a country code ("+1 499 245 6007") are phone numbers even when
        libphonenumber does not know the area code; without the "+", only valid numbers count,
        or every year range ("1963-1989") would be one."""

        def __init__(self) -> None:
            super().__init__(leniency=0, name="international phone")

        def analyze(self, text: str, entities: Any, nlp_artifacts: Any = None, regex_flags: Any = None) -> list[Any]:
            return [r for r in super().analyze(text, entities, nlp_artifacts) if text[r.start] == "+"]

    password = PatternRecognizer(supported_entity="PASSWORD", name="prose password",
                                 patterns=[Pattern("password stated in prose", _PROSE_PASSWORD, 0.6)])
    return (OfflineEmailRecognizer(), PhoneRecognizer(), InternationalPhoneRecognizer(), CreditCardRecognizer(), IbanRecognizer(), IpRecognizer(),
            UsSsnRecognizer(), UsItinRecognizer(), UkNinoRecognizer(), password)


def could_hold_patterned_data(text: str) -> bool:
    """Whether any of the pattern recognizers used here could match: every one needs a digit
    (phones, cards, IBANs, national ids, IPv4), an "@" (e-mail), a ":" (IPv6) or a stated
    password. Text with none of them skips presidio, whose import and regex compilation cost
    about 2 s of a one-line `learn`."""
    return any(c.isdigit() for c in text) or "@" in text or ":" in text or re.search(_PROSE_PASSWORD, text) is not None


def _presidio_findings(text: str) -> list[Finding]:
    if not could_hold_patterned_data(text):
        return []
    findings = []
    for recognizer in _recognizers():
        for result in recognizer.analyze(text, recognizer.supported_entities, None):
            kind = _PRESIDIO_KINDS.get(result.entity_type)
            if kind is None or result.score < _MIN_SCORE:
                continue
            if kind == "phone" and sum(c.isdigit() for c in text[result.start:result.end]) < 7:
                continue  # "1644–54" is a year range, not a number anyone can call
            start, end = result.start, result.end
            if result.entity_type == "PASSWORD":  # redact the password, not the word "password"
                match = re.search(_PROSE_PASSWORD, text[start:end])
                if match:
                    start, end = start + match.start(1), start + match.end(1)
            findings.append(Finding(kind, start, end, type(recognizer).__name__))
    return findings


def _secret_findings(text: str) -> list[Finding]:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import transient_settings

    findings = []
    offset = 0
    with transient_settings({"plugins_used": [{"name": name} for name in _SECRET_PLUGINS]}):
        for line in text.splitlines(keepends=True):
            for secret in scan_line(line):
                value = secret.secret_value or ""
                at = line.find(value) if value else -1
                if at < 0:
                    continue
                start, end = _whole_token(line, at, at + len(value))  # a detector may report only a token's prefix
                findings.append(Finding("secret", offset + start, offset + end, secret.type))
            offset += len(line)
    return findings


def _whole_token(line: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and not line[start - 1].isspace() and line[start - 1] not in "\"'=:":
        start -= 1
    while end < len(line) and not line[end].isspace() and line[end] not in "\"',;":
        end += 1
    return start, end
