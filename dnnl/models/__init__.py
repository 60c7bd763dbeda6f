"""Models taught in the book."""
