"""Tools for tests and benchmarks, kept out of the runtime (nothing in ``xfast`` imports them).

- :mod:`xfast.testing.tiny`: tiny random-weight models shaped like the real ones, built offline
  (``xfast models tiny``; the test suite's ``tiny_models`` fixture);
- :mod:`xfast.testing.standin`: a stand-in for the encoder's model forward, to measure the host
  work around it.
"""
