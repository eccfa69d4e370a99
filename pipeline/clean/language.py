"""Language identification with py3langid's bundled model (140 labels, no download)."""

from __future__ import annotations

import functools

from pipeline.clean.document import Document

LANGUAGE_KEY = "clean.languages"
# The labels of py3langid 0.4's model (`zxx`: no linguistic content). Kept here so that a config
# is checked without loading the model (a second of CPU); a test compares it with the model.
_LABELS = """ace af am an ar ary arz as az ba bcl be bg bn br bs ca crh cs cy da de dz el en eo
    es et
    eu ext fa fi fo fr fuv fy ga gcf gcr gd gl gom grc gu gug guw ha hbo he hi hr ht hu hy id ig
    is it ja jv ka kab kik kk km kn ko ku ky la lb lg lij ln lo lt ltg lv mg mk ml mn mr ms mt my
    ne nl nn no nso oc om or pa pcm pl ps pt qu ro ru rw sa sdh se si sk sl sn so sq sr st sv sw
    ta te tg th tk tl tr tt ug uk ur uz uzs vec vi vo wa wuu xh yo yue zh zu zxx"""
KNOWN_LANGUAGES = frozenset(_LABELS.split())


@functools.lru_cache(maxsize=1)
def load_identifier():
    """py3langid's naive Bayes model with probabilities normalised over all its languages.

    Loaded once per process (about a second: the model is xz-compressed). With `norm_probs` the
    scores are a softmax whose temperature grows with the text length, so they read as a
    confidence in [0, 1].
    """
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def check_languages(codes: list[str] | None, key: str = LANGUAGE_KEY) -> None:
    """A clear error naming the config key when a language code is not one py3langid knows."""
    unknown = sorted(set(codes or ()) - KNOWN_LANGUAGES)
    if unknown:
        known = " ".join(sorted(KNOWN_LANGUAGES))
        raise ValueError(f"`{key}`: unknown language code(s) {unknown}; py3langid knows {known}")


class LanguageFilter:
    """Sets `doc.language` and `doc.language_score`; drops languages not asked for."""

    name = "language"

    def __init__(self, languages: list[str] | None, min_score: float, sample_chars: int = 2000):
        self.languages = frozenset(languages) if languages is not None else None
        self.min_score = min_score
        self.sample_chars = sample_chars
        self.identifier = load_identifier()

    def identify(self, text: str) -> tuple[str, float]:
        # py3langid walks the text byte by byte in Python: a prefix is enough and bounds the cost.
        language, score = self.identifier.classify(text[: self.sample_chars])
        return language, float(score)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        doc.language, doc.language_score = self.identify(doc.text)
        if self.languages is not None and doc.language not in self.languages:
            return False, "language"
        if doc.language_score < self.min_score:
            return False, "language_score"
        return True
