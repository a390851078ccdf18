"""Pure functions on numbers, arrays and tables (no models, no files): statistics, KL, curves, aggregation."""
