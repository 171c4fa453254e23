"""The production settings with the benchmark's URLs (a bare JSON view added as the floor)."""

from rideease.settings import *  # noqa: F403

ROOT_URLCONF = "tests.benchmarks.bench_urls"
