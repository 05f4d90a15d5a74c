"""HTTP routes of the trace API, one module per resource."""
