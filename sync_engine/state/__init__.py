"""State-database access that is not the core store's: one module per concern."""
