"""The INFINITY-CHAT taxonomy of open-ended prompts, declared once: 6 top-level categories, 17 fine ones.

SOURCE: Artificial Hivemind (Jiang et al. 2025, arXiv 2510.22954v1), Fig. 2 and Table 2: 17 shares that sum
over the fine level, two of them top-level categories with no sub-category ("-" in Table 2): Creative Content
Generation (58.0%) and Brainstorm & Ideation (15.2%). So here those two are their own fine category (fine =
top), which gives the paper's count of 17, and their label is written as the top alone; every other label is
written "Top > Fine" (the form hivemind.analyze.categories splits into a "top" and a "fine" row).

`hivemind classify` offers these labels by default; the prompt loader writes a category that names one of them
in its canonical form (`canonical`: the label, its fine name alone, or a name the paper also uses, any case).
Here in core so that both the loader (collect) and the classifier (studies) read it.
"""
from __future__ import annotations

from dataclasses import dataclass

SEPARATOR = " > "


@dataclass(frozen=True)
class Category:
    top: str
    fine: str

    @property
    def label(self) -> str:
        """"Top > Fine"; the top alone where the paper gives it no sub-category (fine = top)."""
        return self.top if self.fine == self.top else f"{self.top}{SEPARATOR}{self.fine}"


def _tree(*groups: tuple[str, tuple[str, ...]]) -> tuple[Category, ...]:
    return tuple(Category(top, fine) for top, fines in groups for fine in (fines or (top,)))


TAXONOMY: tuple[Category, ...] = _tree(
    ("Creative Content Generation", ()),
    ("Brainstorm & Ideation", ()),
    ("Open-Endedness", ("Philosophical Questions", "Abstract Conceptual Questions", "Ambiguous Everyday Questions",
                        "Analytical & Interpretive Questions", "Speculative & Hypothetical Scenarios")),
    ("Information-Seeking", ("Problem Solving", "Decision Support", "Skill Development", "Recommendations",
                             "Concept Explanation", "Personal Advice")),
    ("Alternative Styles", ("Communication Styles", "Alternative Writing Genres")),
    ("Alternative Perspectives", ("Value-Laden Questions", "Controversial Questions")),
)
TOPS: tuple[str, ...] = tuple(dict.fromkeys(c.top for c in TAXONOMY))
FINES: tuple[str, ...] = tuple(c.fine for c in TAXONOMY)
LABELS: tuple[str, ...] = tuple(c.label for c in TAXONOMY)

# Other names the paper gives the same categories: Table 2 ("Brainstorming & Ideation", "Writing Genres",
# "Concept Explanations") and the GPT-4o labelling prompt of its Fig. 14, whose names the Hub set's `categories`
# carry ("Ideation and Brainstorming", "Information-Seeking about ...", "... with Alternative Perspectives",
# "Alternative Communication Styles"). That prompt's one further label, "Opinion-Based Questions with Alternative
# Perspectives", is in neither Fig. 2 nor Table 2, so it maps to nothing (kept as given).
ALIASES: dict[str, str] = {
    "Brainstorming & Ideation": "Brainstorm & Ideation",
    "Ideation and Brainstorming": "Brainstorm & Ideation",
    "Writing Genres": "Alternative Styles > Alternative Writing Genres",
    "Alternative Communication Styles": "Alternative Styles > Communication Styles",
    "Concept Explanations": "Information-Seeking > Concept Explanation",
    "Information-Seeking about Concept Explanations": "Information-Seeking > Concept Explanation",
    "Value-Laden Questions with Alternative Perspectives": "Alternative Perspectives > Value-Laden Questions",
    "Controversial Questions with Alternative Perspectives": "Alternative Perspectives > Controversial Questions",
    **{f"Information-Seeking about {c.fine}": c.label for c in TAXONOMY if c.top == "Information-Seeking"},
}


def split(label: str) -> tuple[str, str | None]:
    """(top, fine) of a label written "Top > Fine"; (label, None) for a label of one level."""
    if SEPARATOR in label:
        top, fine = (part.strip() for part in label.split(SEPARATOR, 1))
        return top, fine
    return label.strip(), None


def _key(text: str) -> str:
    """Case, spacing and "and" for "&" do not tell two names apart."""
    return " ".join(text.split()).lower().replace(" and ", " & ")


_BY_NAME = ({_key(c.fine): c.label for c in TAXONOMY} | {_key(c.label): c.label for c in TAXONOMY}
            | {_key(name): label for name, label in ALIASES.items()})


def canonical(name: str | None) -> str | None:
    """The taxonomy label that `name` names (the label, its fine name alone, or an alias; any case), or None
    when it names none (a top that has several fine categories names none: it is not one label)."""
    return _BY_NAME.get(_key(name)) if name else None
