"""Integrations with other engines, each behind its own optional extra.

- :mod:`promptkit.integrations.ray`: run a prompt or strategy over a Ray Data dataset on an
  actor pool (``pip install "promptkit[ray]"``).

Nothing here is imported by ``import promptkit``; import the submodule you use.
"""
