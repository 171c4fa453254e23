"""Exposure and conversion rules on hand-built event sequences."""

from datetime import UTC, datetime, timedelta

from experiments.exposures import CONVERSION, EXPOSURE, Event, count_exposures, merged

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=30)


def shown(user: str, minutes: float, variant: str = "control", items: str = "ab", version: str = "v1.0.0") -> Event:
    return Event(T0 + timedelta(minutes=minutes), EXPOSURE, user, variant, version, frozenset(items))


def booked(user: str, minutes: float, item: str) -> Event:
    return Event(T0 + timedelta(minutes=minutes), CONVERSION, user, item_id=item)


def counts(exposures: list[Event], conversions: list[Event]):  # type: ignore[no-untyped-def]
    return count_exposures(
        merged(sorted(exposures, key=lambda e: e.ts), sorted(conversions, key=lambda e: e.ts)), window=WINDOW
    )


def test_a_booking_of_a_recommended_item_within_the_window_converts() -> None:
    result = counts([shown("u1", 0)], [booked("u1", 10, "a")])
    assert (result.control.exposed_users, result.control.converted_users) == (1, 1)


def test_a_late_booking_does_not_convert() -> None:
    assert counts([shown("u1", 0)], [booked("u1", 31, "a")]).control.converted_users == 0


def test_a_booking_of_an_item_that_was_not_recommended_does_not_convert() -> None:
    assert counts([shown("u1", 0)], [booked("u1", 5, "z")]).control.converted_users == 0


def test_a_booking_before_the_exposure_does_not_convert() -> None:
    assert counts([shown("u1", 10)], [booked("u1", 5, "a")]).control.converted_users == 0


def test_a_booking_at_the_same_instant_as_the_exposure_converts() -> None:
    assert counts([shown("u1", 0)], [booked("u1", 0, "a")]).control.converted_users == 1


def test_a_later_exposure_renews_the_window_for_its_own_items() -> None:
    result = counts([shown("u1", 0, items="a"), shown("u1", 40, items="b")], [booked("u1", 50, "b")])
    assert result.control.converted_users == 1
    assert (
        counts([shown("u1", 0, items="a"), shown("u1", 40, items="b")], [booked("u1", 50, "a")]).control.converted_users
        == 0
    )


def test_users_count_once_however_often_they_are_exposed() -> None:
    result = counts([shown("u1", 0), shown("u1", 5), shown("u2", 6)], [booked("u1", 7, "a"), booked("u1", 8, "b")])
    assert (result.control.exposed_users, result.control.converted_users, result.exposures) == (2, 1, 3)


def test_users_seen_in_both_variants_are_counted_apart_and_left_out() -> None:
    result = counts(
        [shown("u1", 0, "control"), shown("u1", 5, "treatment"), shown("u2", 1, "treatment")],
        [booked("u1", 6, "a")],
    )
    assert result.users_in_both == 1
    assert (result.control.exposed_users, result.treatment.exposed_users) == (0, 1)
    assert result.treatment.converted_users == 0


def test_versions_served_are_counted_per_variant_from_the_logged_exposures() -> None:
    result = counts(
        [
            shown("u1", 0, "treatment", version="v1.1.0"),
            shown("u2", 1, "treatment", version="v1.2.0"),
            shown("u3", 2, "treatment", version="v1.2.0"),
        ],
        [],
    )
    assert result.treatment.versions == {"v1.1.0": 1, "v1.2.0": 2}


def test_a_booking_exactly_one_window_after_the_exposure_still_converts() -> None:
    assert counts([shown("u1", 0)], [booked("u1", 30, "a")]).control.converted_users == 1


def test_other_riders_traffic_does_not_shorten_or_extend_a_riders_window() -> None:
    # Other riders' events move the stream's clock past u1's exposure; u1's own booking is judged by its own times.
    crowd = [shown(f"u{n}", minutes) for n, minutes in enumerate((5, 12, 20, 29, 35, 45), start=2)]
    within = counts([shown("u1", 0, items="a"), *crowd], [booked("u5", 29.5, "a"), booked("u1", 29.9, "a")])
    late = counts([shown("u1", 0, items="a"), *crowd], [booked("u5", 29.5, "a"), booked("u1", 30.1, "a")])
    assert within.control.converted_users == 2  # u1, and u5, shown "a" at 29 minutes
    assert late.control.converted_users == 1


def test_a_rider_who_converted_counts_once_and_later_exposures_change_nothing() -> None:
    result = counts(
        [shown("u1", 0, items="a"), shown("u1", 10, items="b"), shown("u1", 50, items="c")],
        [booked("u1", 5, "a"), booked("u1", 15, "b"), booked("u1", 55, "c")],
    )
    assert (result.control.exposed_users, result.control.converted_users, result.conversions_seen) == (1, 1, 3)
