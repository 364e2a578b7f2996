"""Enterprise catalog: its event handlers and projection (plan-backed catalogs, published run metadata)."""
