"""Pure functions on numbers, arrays and tables (no models, no files): aggregation, agreement, statistics."""
