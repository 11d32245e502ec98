"""The client side: ask for a grant, download ciphertext in parallel, decrypt, verify."""
