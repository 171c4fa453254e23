"""Geometry of the summary chart: conversion rate per variant with its interval, as SVG coordinates (pure)."""

from typing import Any

from core.variants import CONTROL, TREATMENT, VARIANTS

WIDTH, HEIGHT, MARGIN, BAR = 520, 260, 40, 120


def chart_geometry(summary: dict[str, Any]) -> dict[str, Any]:
    """Bars and error bars in a WIDTH x HEIGHT box, scaled to the largest interval bound."""
    variants = summary["variants"]
    tops = [
        (v.get("conversionRateCi") or {}).get("upper") or v.get("conversionRate") or 0.0
        for v in (variants[CONTROL], variants[TREATMENT])
    ]
    scale_max = max(max(tops) * 1.15, 0.01)
    plot = HEIGHT - 2 * MARGIN

    def y(value: float) -> float:
        return round(HEIGHT - MARGIN - value / scale_max * plot, 1)

    bars = []
    for index, name in enumerate(VARIANTS):
        variant = variants[name]
        rate = variant.get("conversionRate") or 0.0
        interval = variant.get("conversionRateCi") or {"lower": rate, "upper": rate}
        x = MARGIN + 60 + index * (BAR + 100)
        bars.append(
            {
                "name": name,
                "x": x,
                "width": BAR,
                "y": y(rate),
                "height": round(HEIGHT - MARGIN - y(rate), 1),
                "center": x + BAR // 2,
                "cap_left": x + BAR // 2 - 12,
                "cap_right": x + BAR // 2 + 12,
                "low": y(interval["lower"]),
                "high": y(interval["upper"]),
                "label": f"{rate:.2%}" if variant.get("conversionRate") is not None else "no users",
                "range": f"[{interval['lower']:.2%}, {interval['upper']:.2%}]",
            }
        )
    baseline = HEIGHT - MARGIN
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "baseline": baseline,
        "label_y": baseline + 16,
        "bars": bars,
        "max": f"{scale_max:.1%}",
    }
