"""Fleet: sizing, cost, prices, plans, trade-offs and the audit report."""
