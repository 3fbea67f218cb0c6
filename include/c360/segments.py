"""Segment definitions (``segments.yaml``) as typed, validated data.

The RFM settings, the ordered RFM segment mapping and the seed 002 audiences with their thresholds. An
unknown key, a score range outside 1–5, a mapping that leaves a score combination unmapped or an audience
on an undeclared metric fails DAG parsing with a message naming the entry.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SEGMENTS_FILE = Path(__file__).with_name("segments.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Score = tuple[int, int]


class RfmSettings(_Strict):
    window_days: int = Field(gt=0)
    excluded_statuses: tuple[str, ...] = ()


class RfmSegment(_Strict):
    name: str
    r: Score
    f: Score
    m: Score

    @model_validator(mode="after")
    def _ranges(self) -> RfmSegment:
        for axis in ("r", "f", "m"):
            lo, hi = getattr(self, axis)
            if not 1 <= lo <= hi <= 5:
                raise ValueError(f"{self.name}: {axis} range {[lo, hi]} must be within 1..5, low <= high")
        return self

    def matches(self, r: int, f: int, m: int) -> bool:
        return all(lo <= v <= hi for v, (lo, hi) in zip((r, f, m), (self.r, self.f, self.m), strict=True))


class Metric(_Strict):
    kind: Literal["order_value", "order_count", "items_in_categories", "abandoned_cart_sessions"]
    window_days: int = Field(gt=0)
    categories: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _categories(self) -> Metric:
        if (self.kind == "items_in_categories") != bool(self.categories):
            raise ValueError("'categories' is required for items_in_categories and only there")
        return self


class Audience(_Strict):
    name: str
    description: str
    metric: str
    at_least: float


class Segments(_Strict):
    rfm: RfmSettings
    rfm_segments: tuple[RfmSegment, ...] = Field(min_length=1)
    metrics: dict[str, Metric]
    audiences: tuple[Audience, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Segments:
        unmapped = [c for c in itertools.product(range(1, 6), repeat=3) if self.rfm_segment(*c) is None]
        if unmapped:
            raise ValueError(f"rfm_segments leave score combinations (r, f, m) unmapped: {unmapped[:10]}")
        for a in self.audiences:
            if a.metric not in self.metrics:
                raise ValueError(f"audience {a.name!r}: metric {a.metric!r} is not declared in metrics")
        names = [a.name for a in self.audiences] + [s.name for s in self.rfm_segments]
        if len(set(names)) != len(names):
            raise ValueError("segment names must be unique across audiences and rfm_segments")
        return self

    def rfm_segment(self, r: int, f: int, m: int) -> str | None:
        return next((s.name for s in self.rfm_segments if s.matches(r, f, m)), None)

    def spec(self) -> dict:
        """What the Spark job needs, as plain JSON."""
        return self.model_dump(mode="json")


class SegmentsError(ValueError):
    pass


def parse_segments(text: str, source: str = "<string>") -> Segments:
    try:
        return Segments.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        lines = [f"invalid segment definitions {source}:"]
        lines += [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise SegmentsError("\n".join(lines)) from None


@functools.cache
def load_segments(path: Path = SEGMENTS_FILE) -> Segments:
    return parse_segments(path.read_text(), source=str(path))
