"""One module per method, one entry point each, one frozen result dataclass each."""
