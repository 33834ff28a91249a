"""HTTP routers of the grants service, one module per resource."""
