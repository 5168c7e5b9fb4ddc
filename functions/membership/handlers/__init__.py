"""Lambda entry points: parse, authorize, call the domain, map errors."""
