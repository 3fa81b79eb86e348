"""Pure data models: no I/O, no imports from the rest of jobbers."""
