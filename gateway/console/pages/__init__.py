"""The console's pages, one module per area; each reads as: who may look, what it asks a service."""
