"""Reading result folders, the self-contained HTML report and figure regeneration (no models imported)."""
