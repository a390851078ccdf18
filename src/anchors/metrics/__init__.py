"""Pure functions on numbers and arrays (no models): KL divergences, kurtosis, attention reductions, …"""
