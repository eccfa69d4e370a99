"""Adding a quality filter is its class (with its config class) and one entry in `FILTERS`: the
config section, `build_filters` and the funnel's step order follow (issue 34, item 6)."""

from __future__ import annotations

from pipeline.clean.config import CleanConfig, clean_config_model
from pipeline.clean.document import Document
from pipeline.clean.filters import FILTERS, FilterResult, RuleFilter, build_filters
from pipeline.clean.funnel import STEPS, funnel_steps
from pipeline.clean.process import DocumentCleaner, Rejected
from pipeline.core.base_config import StrictModel
from tests.clean.pages import PARAGRAPHS


class ShoutingConfig(StrictModel):
    """A throwaway rule: drop text that is mostly capital letters."""

    enabled: bool = True
    """Apply it."""
    max_upper_fraction: float = 0.5
    """Letters in upper case above this share: `shouting`."""


class ShoutingFilter(RuleFilter, name="shouting", english_only=False, config=ShoutingConfig):
    def filter(self, doc: Document) -> FilterResult:
        letters = [c for c in doc.text if c.isalpha()]
        upper = sum(c.isupper() for c in letters) / max(len(letters), 1)
        return (False, "shouting") if upper > self.cfg.max_upper_fraction else True


def test_the_real_table_is_what_the_config_and_funnel_use():
    assert CleanConfig.filters == FILTERS
    names = [f.name for f in FILTERS]
    assert [k for k in CleanConfig.model_fields if k in names] == names
    assert funnel_steps(FILTERS) == STEPS and STEPS[5 : 5 + len(names)] == tuple(names)


def test_a_throwaway_filter_is_one_entry_and_lands_in_its_place():
    filters = (*FILTERS[:2], ShoutingFilter, *FILTERS[2:])
    model = clean_config_model(filters)
    fields = list(model.model_fields)
    assert fields.index("shouting") == fields.index(FILTERS[1].name) + 1
    cfg = model.model_validate({"languages": None, "shouting": {"max_upper_fraction": 0.6}})
    assert [f.name for f in build_filters(cfg)] == [f.name for f in filters]

    cleaner = DocumentCleaner(cfg)
    good = "\n\n".join(PARAGRAPHS["en"])
    page = "<html><body>" + "".join(f"<p>{p}</p>" for p in good.split("\n\n")) + "</body></html>"
    records = [(page.encode(), "text/html"), (page.upper().encode(), "text/html")]
    outcomes, funnel = cleaner.clean_batch(records)
    assert not isinstance(outcomes[0], Rejected)
    assert outcomes[1] == Rejected("shouting", "")
    steps = list(funnel)
    assert steps.index("shouting") == steps.index(FILTERS[1].name) + 1
    assert funnel["shouting"]["dropped"] == 1 and funnel["shouting"]["reasons"] == {"shouting": 1}
