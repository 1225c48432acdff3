"""Google Cloud clients shared by the stores: one helper per service, created on first use."""
