"""Small shared helpers: image reading with reason codes, atomic file writes."""
