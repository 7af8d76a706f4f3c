"""Data: manifests (schema, read, write, face stage), folder layouts, datasets, transforms and loaders."""
