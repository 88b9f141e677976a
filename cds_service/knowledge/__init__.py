"""Clinical knowledge as versioned data: value sets, medications, thresholds, card texts."""
