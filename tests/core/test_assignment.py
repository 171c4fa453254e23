"""Variant assignment: sticky per user, split as configured, independent across experiments."""

import hashlib

import pytest

from core.assignment import assignment_bucket, variant_assign

USERS = [f"rider-{n:06d}" for n in range(100_000)]


def test_the_same_user_always_gets_the_same_variant() -> None:
    first = [variant_assign(user, treatment_share=0.5) for user in USERS[:1000]]
    again = [variant_assign(user, treatment_share=0.5) for user in USERS[:1000]]
    assert first == again


def test_the_bucket_is_sha1_of_salt_and_user() -> None:
    expected = int.from_bytes(hashlib.sha1(b"rec-engine:rider-000001").digest()[:8], "big") / 2**64
    assert assignment_bucket("rider-000001") == expected


@pytest.mark.parametrize("share", [0.5, 0.1, 0.9])
def test_the_split_matches_the_share_over_100k_users(share: float) -> None:
    treated = sum(variant_assign(user, treatment_share=share) == "treatment" for user in USERS)
    # Binomial standard deviation at n = 100k is at most 0.0016; allow four of them.
    assert abs(treated / len(USERS) - share) < 0.0064


def test_shares_of_zero_and_one_send_everyone_one_way() -> None:
    assert {variant_assign(user, treatment_share=0.0) for user in USERS[:2000]} == {"control"}
    assert {variant_assign(user, treatment_share=1.0) for user in USERS[:2000]} == {"treatment"}


def test_raising_the_share_only_moves_users_into_treatment() -> None:
    at_10 = {user for user in USERS[:20000] if variant_assign(user, treatment_share=0.1) == "treatment"}
    at_50 = {user for user in USERS[:20000] if variant_assign(user, treatment_share=0.5) == "treatment"}
    assert at_10 < at_50


def test_a_different_salt_gives_an_independent_split() -> None:
    a = [variant_assign(user, treatment_share=0.5, salt="exp-a") for user in USERS[:20000]]
    b = [variant_assign(user, treatment_share=0.5, salt="exp-b") for user in USERS[:20000]]
    agreement = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    assert 0.47 < agreement < 0.53
