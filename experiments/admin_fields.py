"""Form fields of the experiment admin: guardrails and ramp steps one per line, secondary metrics as ticks plus typed
event types. They only turn text into the stored shape; the experiment's own rules (experiments.models) check the
values, as they do for the API, so both say the same."""

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from core.metrics import EVENT_METRIC_PREFIX, GUARDRAIL_METRICS, SECONDARY_METRICS

RELATIVE, ABSOLUTE = "relative", "absolute"


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


class LinesField(forms.Field):
    """A list of dicts, one per line of words (commas count as spaces); empty: an empty list."""

    widget = forms.Textarea(attrs={"rows": 5, "cols": 60, "spellcheck": "false"})
    line_help = ""

    def parse(self, words: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def show(self, item: dict[str, Any]) -> str:
        raise NotImplementedError

    def to_python(self, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, list):
            return value
        items = []
        for number, line in enumerate(str(value or "").splitlines(), start=1):
            words = line.replace(",", " ").split()
            if not words:
                continue
            try:
                items.append(self.parse(words))
            except ValueError as exc:
                raise ValidationError(f"Line {number} ({line.strip()}): write {self.line_help}.") from exc
        return items

    def prepare_value(self, value: Any) -> Any:
        # The stored list as lines; text as posted (shown again with its error) stays as it is.
        if isinstance(value, list):
            return "\n".join(self.show(item) if isinstance(item, dict) else json.dumps(item) for item in value)
        return value


class GuardrailsField(LinesField):
    line_help = f"a metric, a threshold and {RELATIVE} or {ABSOLUTE}, e.g. latency_p95 0.2 {RELATIVE}"

    def parse(self, words: list[str]) -> dict[str, Any]:
        metric, threshold, kind = words  # ValueError unless three words
        if kind not in (RELATIVE, ABSOLUTE):
            raise ValueError(kind)
        return {"metric": metric, "threshold": float(threshold), "relative": kind == RELATIVE}

    def show(self, item: dict[str, Any]) -> str:
        return f"{item.get('metric')} {item.get('threshold')} {RELATIVE if item.get('relative') else ABSOLUTE}"


class RampField(LinesField):
    line_help = "a share, minimum hours and minimum users, e.g. 0.05 24 1000"

    def parse(self, words: list[str]) -> dict[str, Any]:
        share, hours, users = words  # ValueError unless three words
        return {"share": float(share), "minHours": _number(hours), "minUsers": int(users)}

    def show(self, item: dict[str, Any]) -> str:
        return f"{item.get('share')} {item.get('minHours')} {item.get('minUsers')}"


def _split(value: Any) -> list[Any]:
    """Metric names as the widget shows them: [ticked catalogue names, "type, type"]."""
    names = [str(name) for name in value or []]
    events = [name.removeprefix(EVENT_METRIC_PREFIX) for name in names if name not in SECONDARY_METRICS]
    return [[name for name in names if name in SECONDARY_METRICS], ", ".join(events)]


class SecondaryMetricsWidget(forms.MultiWidget):
    def __init__(self) -> None:
        catalogue = forms.CheckboxSelectMultiple(choices=[(name, name) for name in SECONDARY_METRICS])
        events = forms.TextInput(attrs={"size": 60, "placeholder": "event types, e.g. search, share_ride"})
        super().__init__([catalogue, events])

    def decompress(self, value: Any) -> list[Any]:
        return _split(value)


class SecondaryMetricsField(forms.MultiValueField):
    """Ticked catalogue metrics, then event:<type> for each typed event type (given with or without the prefix)."""

    widget = SecondaryMetricsWidget

    def __init__(self, **kwargs: Any) -> None:
        fields = (
            forms.MultipleChoiceField(choices=[(name, name) for name in SECONDARY_METRICS], required=False),
            forms.CharField(required=False),
        )
        super().__init__(fields, require_all_fields=False, required=False, **kwargs)

    def compress(self, data_list: list[Any]) -> list[str]:
        if not data_list:
            return []
        ticked, typed = data_list
        events = [name.removeprefix(EVENT_METRIC_PREFIX) for name in str(typed or "").replace(",", " ").split()]
        return [*ticked, *(EVENT_METRIC_PREFIX + name for name in events)]

    def prepare_value(self, value: Any) -> Any:
        # The stored list of names is split for the widget; what was posted ([ticked, typed]) is shown as it came.
        if isinstance(value, list) and all(isinstance(name, str) for name in value):
            return _split(value)
        return value

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return bool(self.clean(data) != list(initial or []))
        except ValidationError:
            return True


GUARDRAILS_HELP = (
    f"One per line: a metric ({', '.join(GUARDRAIL_METRICS)}, each once), a threshold and {RELATIVE} or {ABSOLUTE}. "
    f"<code>latency_p95 0.2 {RELATIVE}</code> fails when treatment's p95 latency is more than 20% above control's; "
    f"<code>error_rate 0.005 {ABSOLUTE}</code> when its error rate is more than half a percentage point above. "
    "A failing guardrail rolls the experiment back at once. Empty: no guardrails."
)
SECONDARY_METRICS_HELP = (
    "Tick catalogue metrics and type event types (comma-separated; each becomes <code>event:&lt;type&gt;</code>, the "
    "share of users with such an event). Up to 10 in all, reported with adjusted p-values, never deciding alone."
)
RAMP_HELP = (
    "One step per line: a share, minimum hours and minimum users, e.g. <code>0.05 24 1000</code>; shares rise, up to "
    "10 steps. Starting serves the first step's share; the automatic looks move on once a step has served its hours "
    "and users with every guardrail holding. Empty: no ramp (starting serves the treatment share)."
)
