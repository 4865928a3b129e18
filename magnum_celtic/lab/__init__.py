"""The celtic lab: a private Keystone + Heat + Magnum on loopback, and a fake cloud.

Used by the functional tests (tests/functional), the Heat benchmarks (tests/bench) and
the ``magnum-celtic lab`` command. What is real and what is a stand-in: doc/harness.md.
"""
