"""Who is asking: JWT verification against trusted issuers, mapped to a Principal."""
