"""Lambda entry points: parse, authorize, call the domain, map errors.

Every function imports its handler from here, so this is where a cold start begins:
packages that import everything from their `__init__` import lean from now on
(membership.lean_imports).
"""
from membership import lean_imports

lean_imports.install()
