"""Junk pages of the kinds the learned quality stage must drop, written by code (seeded), and the
good pages they are mixed with: the bundled sample's real pages and the real WARC pages.

- `spam`: keyword-stuffed sales pages (pharmacy, casino, loans, SEO) from templates.
- `listing`: product and classified listings, one item per line with prices and codes.
- `boilerplate`: navigation, cookie banners, footers, share buttons, login forms.
- `word_salad`: the reference's own words drawn by their frequency, in sentences with capitals,
  commas and full stops: the vocabulary of documentation without its grammar (issue 31).
- `shuffled_words`: a real page whose every sentence has its words shuffled (machine-shuffled).
- `shuffled_sentences`: a real page with its sentences in random order (each sentence intact).
"""

from __future__ import annotations

import random
import re
from collections import Counter

from pipeline.quality.ngram_lm import tokens

JUNK_KINDS = ("spam", "listing", "boilerplate", "word_salad", "shuffled_words")
SENTENCE = re.compile(r"(?<=[.!?])\s+")

_SPAM_ITEMS = [
    "viagra",
    "cialis",
    "casino bonus",
    "payday loans",
    "replica watches",
    "weight loss pills",
    "cheap followers",
    "crypto signals",
    "essay writing",
    "backlinks",
    "slot machines",
    "forex robot",
    "diet tea",
    "cheap flights",
    "bitcoin doubler",
]
_SPAM_PHRASES = [
    "Buy {x} online",
    "best {x} price",
    "cheap {x} no prescription",
    "{x} free shipping",
    "order {x} now",
    "discount {x} 2024",
    "top {x} deals",
    "{x} guaranteed results",
    "click here for {x}",
    "{x} sale today only",
    "100% real {x}",
    "get {x} fast",
]
_NAV = [
    "Home",
    "About us",
    "Contact",
    "Blog",
    "Shop",
    "Careers",
    "Login",
    "Sign up",
    "Help",
    "Privacy Policy",
    "Terms of Use",
    "Sitemap",
    "FAQ",
    "Press",
    "Support",
    "Newsletter",
]
_BOILER = [
    "We use cookies to improve your experience. By continuing you accept our use of cookies.",
    "Accept all cookies",
    "Manage preferences",
    "Share on Facebook",
    "Tweet",
    "Pin it",
    "Subscribe to our newsletter",
    "Enter your email address",
    "Forgot your password?",
    "Remember me",
    "Skip to main content",
    "Back to top",
    "All rights reserved.",
    "Follow us on social media",
    "Loading...",
    "Read more",
    "Previous post",
    "Next post",
    "You must be logged in to post a comment.",
    "Powered by WordPress",
]
_GOODS = [
    "LED desk lamp",
    "wireless mouse",
    "USB-C cable",
    "garden hose",
    "office chair",
    "stainless kettle",
    "yoga mat",
    "phone case",
    "hiking boots",
    "coffee grinder",
    "bluetooth speaker",
    "baby stroller",
    "car seat cover",
    "winter jacket",
    "water bottle",
]
_STOCK = ["In stock", "Sold out", "2-3 days"]
_COLOURS = ["black", "white", "red", "blue", "grey", "green", "silver"]


def spam(rng: random.Random) -> str:
    items = rng.sample(_SPAM_ITEMS, 3)
    lines = []
    for _ in range(rng.randint(12, 30)):
        phrases = [rng.choice(_SPAM_PHRASES).format(x=rng.choice(items)) for _ in range(3)]
        lines.append("!!! ".join(phrases) + rng.choice(["!", "!!!", " >>>", " $$$"]))
    return "\n".join(lines)


def listing(rng: random.Random) -> str:
    lines = [rng.choice(["Products", "Search results", "New arrivals", "Classifieds"])]
    for _ in range(rng.randint(15, 40)):
        good, colour = rng.choice(_GOODS), rng.choice(_COLOURS)
        lines.append(
            f"{good.title()} {colour} {rng.randint(1, 9)}pcs | SKU {rng.randint(10**5, 10**6)} | "
            f"${rng.randint(2, 300)}.{rng.randint(0, 99):02d} | {rng.choice(_STOCK)}"
            f" | {rng.randint(0, 5)}.{rng.randint(0, 9)} stars ({rng.randint(0, 999)})"
        )
    return "\n".join(lines)


def boilerplate(rng: random.Random) -> str:
    lines = [" | ".join(rng.sample(_NAV, rng.randint(5, 10)))]
    lines += rng.sample(_BOILER, rng.randint(8, 14))
    company = rng.choice(["Acme", "Globex", "Initech", "Umbrella"])
    lines.append(" | ".join(rng.sample(_NAV, rng.randint(4, 8))))
    lines.append(f"© {rng.randint(2005, 2024)} {company} Inc. All rights reserved.")
    return "\n".join(lines)


def vocabulary(texts: list[str]) -> tuple[list[str], list[int]]:
    """The words (letters only) of `texts` with their counts, for drawing word salad."""
    freq = Counter(w for t in texts for w in tokens(t) if w.isalpha())
    words = sorted(freq)
    return words, [freq[w] for w in words]


def word_salad(rng: random.Random, vocab: tuple[list[str], list[int]]) -> str:
    """Sentences of the vocabulary's words drawn by frequency, punctuated like prose."""
    words, weights = vocab
    paragraphs = []
    for _ in range(rng.randint(3, 6)):
        sentences = []
        for _ in range(rng.randint(3, 7)):
            ws = rng.choices(words, weights, k=rng.randint(8, 22))
            if len(ws) > 6:
                ws[rng.randint(2, len(ws) - 3)] += ","
            sentences.append(" ".join(ws).capitalize() + rng.choice([".", ".", ".", "?", ":"]))
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def shuffled_words(rng: random.Random, page: str) -> str:
    """`page` with the words of every sentence in random order (lines and sentences kept)."""
    out = []
    for line in page.splitlines():
        parts = []
        for sentence in SENTENCE.split(line):
            ws = sentence.split()
            rng.shuffle(ws)
            parts.append(" ".join(ws))
        out.append(" ".join(parts))
    return "\n".join(out)


def shuffled_sentences(rng: random.Random, page: str) -> str:
    """`page` with its sentences in random order, each sentence intact."""
    sentences = [s for line in page.splitlines() for s in SENTENCE.split(line) if s.strip()]
    rng.shuffle(sentences)
    return "\n".join(" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4))


def junk_pages(kind: str, n: int, seed: int, pages: list[str], vocab) -> list[str]:
    """`n` junk pages of `kind`; the shuffled kinds shuffle `pages`, word salad draws `vocab`."""
    rng = random.Random(f"{kind}-{seed}")
    make = {
        "spam": lambda: spam(rng),
        "listing": lambda: listing(rng),
        "boilerplate": lambda: boilerplate(rng),
        "word_salad": lambda: word_salad(rng, vocab),
        "shuffled_words": lambda: shuffled_words(rng, rng.choice(pages)),
        "shuffled_sentences": lambda: shuffled_sentences(rng, rng.choice(pages)),
    }[kind]
    return [make() for _ in range(n)]
