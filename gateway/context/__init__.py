"""The facts around a request that the policy decides on: geo-IP, screening, the active pack."""
