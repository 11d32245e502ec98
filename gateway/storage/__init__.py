"""Ciphertext storage behind one small interface; backends are chosen by a setting."""
