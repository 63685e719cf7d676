"""A recording's effective labels: its own, and those its cases give it. Pure.

R2 (004_2fb3dba4410dc436.txt Art. 11): footage is labelled with the case
cause (案由) and the parties (当事人). A clerk may label one recording, or
link it to a case whose cause, parties and categories then count as the
recording's own (`dockd list --party` finds them, retention reads their
categories). What `dockd list` and `dockd show` print is that union, and
each label says where it came from, so that a supervisor can tell a label
written on the recording from one it inherits and loses on unlinking.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

OWN = "own"


@dataclass(frozen=True)
class CaseLabels:
    """What one case says of every recording linked to it."""

    no: str
    cause: str
    parties: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Label:
    text: str
    source: str  # "own", or "case NO"

    @property
    def from_case(self) -> bool:
        return self.source != OWN


@dataclass(frozen=True)
class EffectiveLabels:
    """Each label once, in the order: own first, then cases by number."""

    cases: tuple[str, ...]
    causes: tuple[Label, ...]
    parties: tuple[Label, ...]
    categories: tuple[Label, ...]

    def as_json(self) -> dict[str, Any]:
        def listed(labels: Iterable[Label]) -> list[dict[str, str]]:
            return [{"text": label.text, "source": label.source} for label in labels]

        return {
            "cases": list(self.cases),
            "causes": listed(self.causes),
            "parties": listed(self.parties),
            "categories": listed(self.categories),
        }


def effective_labels(
    cause: str | None,
    parties: Sequence[str],
    categories: Sequence[str],
    cases: Iterable[CaseLabels],
) -> EffectiveLabels:
    """The recording's own labels and its cases' labels, each text once.

    A text that the recording has itself and also inherits is shown as its
    own: unlinking the case would not remove it.
    """
    ordered = sorted(cases, key=lambda c: c.no)

    def merged(
        own: Iterable[str], per_case: Iterable[tuple[str, Iterable[str]]]
    ) -> tuple[Label, ...]:
        seen: dict[str, Label] = {}
        for text in own:
            seen.setdefault(text, Label(text, OWN))
        for no, texts in per_case:
            for text in texts:
                seen.setdefault(text, Label(text, f"case {no}"))
        return tuple(seen.values())

    return EffectiveLabels(
        cases=tuple(c.no for c in ordered),
        causes=merged(
            [cause] if cause else [], ((c.no, [c.cause] if c.cause else []) for c in ordered)
        ),
        parties=merged(parties, ((c.no, c.parties) for c in ordered)),
        categories=merged(categories, ((c.no, c.categories) for c in ordered)),
    )


def shown(labels: Iterable[Label]) -> str:
    """One table cell: `张三, 李四 (case A-1)`; '-' when there is none."""
    return (
        ", ".join(
            label.text if not label.from_case else f"{label.text} ({label.source})"
            for label in labels
        )
        or "-"
    )
