"""HTTP routers of the ipshare service, one module per resource."""
