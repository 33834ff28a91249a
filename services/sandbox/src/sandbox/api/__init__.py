"""HTTP routers of the sandbox service, one module per resource."""
