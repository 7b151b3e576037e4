"""Benchmarks of Shequtong: raw baselines, an open-loop load driver, the data generator, the resident
journeys through the API gateway and the event pipeline. See bench/README.md. Never timed tests."""
