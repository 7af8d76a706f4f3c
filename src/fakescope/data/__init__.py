"""Data: image reading, preprocessing, datasets and the built-in synthetic benchmark."""
