"""Entry points of the lab's service processes (``python -m magnum_celtic.lab.services.X``).

Each one runs the real OpenStack service code; the only additions are the ones a lab
without a cloud needs, and each is named in its module docstring.
"""
