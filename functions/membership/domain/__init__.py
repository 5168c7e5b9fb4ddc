"""Pure domain rules: pydantic models and functions, no I/O."""
