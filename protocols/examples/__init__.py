"""Small protocols that show how the round framework is used."""
