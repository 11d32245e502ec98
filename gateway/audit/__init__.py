"""The audit log: an RFC 6962 Merkle tree over canonical JSON entries, with signed checkpoints."""
